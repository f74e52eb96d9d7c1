"""``make soak DURATION=10m``: a bounded mixed workload against a stack of its own while a chaos
loop kills and restarts the workers (and the outbox relays they host), the broker and
PostgreSQL; then the system is left to converge and is judged by the real reconciliation and
the real audit verification (docs/RELIABILITY.md).

Run as ``python -m tests.soak --duration 10m [--seed N]``. No file here is named ``test_*``:
pytest does not collect the driver; tests/ops/test_soak_short.py runs it briefly.
"""
