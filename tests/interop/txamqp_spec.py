"""Writing the spec XML that txAMQP loads (:mod:`kiltmq.protocol.spec_xml`) to a file."""

from __future__ import annotations

from pathlib import Path

from kiltmq.protocol.spec_xml import spec08_xml, spec_xml


def write_spec(path: Path, *, amqp_0_8: bool = False) -> Path:
    """Write the spec XML (0-9-1, or 0-8) to ``path``; returns ``path``."""
    path.write_text(spec08_xml() if amqp_0_8 else spec_xml(), encoding="utf-8")
    return path
