"""The points HTTP API."""
