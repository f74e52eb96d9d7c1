"""The redeem database: migrations and named queries."""

from __future__ import annotations

from pathlib import Path

from jifen.kernel.db import Queries

MIGRATIONS = Path(__file__).with_name("migrations")


def queries() -> Queries:
    return Queries(Path(__file__).with_name("queries"))
