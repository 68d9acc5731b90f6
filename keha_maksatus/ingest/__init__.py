"""Ingest: the landing folder's exports read, parsed, validated, pseudonymised and
stored in the working warehouse, one file at a time (store.ingest_landing)."""
