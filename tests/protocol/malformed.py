"""What a decoder may raise on malformed input (see the codec module docstring); the
connection turns each into 502 SYNTAX_ERROR."""

from __future__ import annotations

import struct

MALFORMED = (ValueError, struct.error, IndexError)
