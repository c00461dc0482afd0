"""All scenarios: importing this module registers them in ``registry.SCENARIOS``."""

from . import (  # noqa: F401
    sc_amqp08,
    sc_consumers,
    sc_features,
    sc_messaging,
    sc_protocol,
    sc_queue_types,
    sc_quorum,
    sc_settlement,
    sc_stream,
    sc_topology,
    sc_values,
)
