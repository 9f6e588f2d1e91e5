"""Storage: engine, schema metadata, migrations and the one writer (group commit)."""
