"""The tasks HTTP API."""
