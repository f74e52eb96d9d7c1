"""``python -m jifen.points api|worker|migrate``."""

from __future__ import annotations

from jifen.kernel.service import main
from jifen.points.api.app import build_app
from jifen.points.db import MIGRATIONS
from jifen.points.settings import PointsSettings
from jifen.points.worker_app import build_worker_app


def run_signals(settings: PointsSettings) -> None:
    """The faust app, imported only by the process that runs it."""
    from jifen.points.stream.app import run

    run(settings)


if __name__ == "__main__":
    main(
        prog="jifen.points",
        settings_factory=PointsSettings,
        migrations=MIGRATIONS,
        api=build_app,  # type: ignore[arg-type]
        worker=build_worker_app,  # type: ignore[arg-type]
        extra={"signals": run_signals},  # type: ignore[dict-item]
    )
