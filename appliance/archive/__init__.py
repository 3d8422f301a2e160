"""Copies sealed recordings to the clinic's S3-compatible object store, immutable (Object Lock)."""
