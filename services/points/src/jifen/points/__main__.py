"""``python -m jifen.points api|worker|signals|migrate``.

Each command imports only what its process runs: the worker's modules (the ledger consumer,
the audit loop and its metrics) are imported by the worker alone, the faust app by the
signals process alone, so no process exports another's gauges at their defaults."""

from __future__ import annotations

from fastapi import FastAPI

from jifen.kernel.service import main
from jifen.points.api.app import build_app
from jifen.points.db import MIGRATIONS
from jifen.points.settings import PointsSettings


def build_worker(settings: PointsSettings) -> FastAPI:
    """The ledger worker with its audit loop, imported only by the process that runs it."""
    from jifen.points.worker_app import build_worker_app

    return build_worker_app(settings)


def run_signals(settings: PointsSettings) -> None:
    """The faust app, imported only by the process that runs it."""
    from jifen.points.signals_app.app import run

    run(settings)


if __name__ == "__main__":
    main(
        prog="jifen.points",
        settings_factory=PointsSettings,
        migrations=MIGRATIONS,
        api=build_app,  # type: ignore[arg-type]
        worker=build_worker,  # type: ignore[arg-type]
        extra={"signals": run_signals},  # type: ignore[dict-item]
    )
