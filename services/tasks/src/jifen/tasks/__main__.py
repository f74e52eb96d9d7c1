"""``python -m jifen.tasks api|worker|migrate``."""

from __future__ import annotations

from jifen.kernel.service import main
from jifen.tasks.api.app import build_app
from jifen.tasks.db import MIGRATIONS
from jifen.tasks.settings import TasksSettings
from jifen.tasks.worker_app import build_worker_app

if __name__ == "__main__":
    main(
        prog="jifen.tasks",
        settings_factory=TasksSettings,
        migrations=MIGRATIONS,
        api=build_app,  # type: ignore[arg-type]
        worker=build_worker_app,  # type: ignore[arg-type]
    )
