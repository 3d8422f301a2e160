"""MicroPython firmware of the treatment controller board (see docs/controller-protocol.md)."""
