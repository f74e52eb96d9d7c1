"""``python -m jifen.points api|worker|relay|signals|migrate``.

Each command imports only what its process runs: the worker's modules (the ledger consumer)
by the worker alone, the relay's (the ledger relay, the audit loop and their metrics) by the
relay process alone, the faust app by the signals process alone, so no process exports
another's gauges at their defaults."""

from __future__ import annotations

from fastapi import FastAPI

from jifen.kernel.runtime import serve
from jifen.kernel.service import main
from jifen.points.api.app import build_app
from jifen.points.db import MIGRATIONS
from jifen.points.settings import PointsSettings


def build_worker(settings: PointsSettings) -> FastAPI:
    """The ledger worker, imported only by the process that runs it."""
    from jifen.points.worker_app import build_worker_app

    return build_worker_app(settings)


def run_relay(settings: PointsSettings) -> None:
    """The ledger relay and the audit sequencer, imported only by the process that runs them."""
    from jifen.points.relay_app import build_relay_app

    serve(build_relay_app(settings), settings.host, settings.relay_port, settings.log_level)


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
        extra={"relay": run_relay, "signals": run_signals},  # type: ignore[dict-item]
    )
