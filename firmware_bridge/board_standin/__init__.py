"""A stand-in `machine` for MicroPython's unix port (controller sim --engine micropython); MicroPython only."""
