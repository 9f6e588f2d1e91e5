"""Small helpers shared by several domains (clock, compression of stored payloads)."""
