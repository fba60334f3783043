"""Storage: the append-only decision log and the freeze and incident store (SQLite)."""
