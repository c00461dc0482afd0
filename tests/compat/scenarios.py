"""All scenarios: importing this module registers them in ``registry.SCENARIOS``."""

from . import sc_consumers, sc_features, sc_messaging, sc_protocol, sc_topology  # noqa: F401
