"""Sessions, recordings and the audit trail (SQLite), the disk guard, and verified export."""
