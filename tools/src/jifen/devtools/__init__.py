"""Jifen's development harness (``make run``, ``make stop``, ``make demo``, the tests' stacks):
it knows every service by name and route, so no service imports it and no image installs it."""
