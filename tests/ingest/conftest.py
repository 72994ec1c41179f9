"""Ingest fixtures live in tests/conftest.py (maildir, drop_mail), shared with portal tests."""
