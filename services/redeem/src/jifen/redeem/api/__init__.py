"""The redeem HTTP API."""
