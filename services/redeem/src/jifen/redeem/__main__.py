"""``python -m jifen.redeem api|worker|migrate``."""

from __future__ import annotations

from jifen.kernel.service import main
from jifen.redeem.api.app import build_app
from jifen.redeem.db import MIGRATIONS
from jifen.redeem.settings import RedeemSettings
from jifen.redeem.worker_app import build_worker_app

if __name__ == "__main__":
    main(
        prog="jifen.redeem",
        settings_factory=RedeemSettings,
        migrations=MIGRATIONS,
        api=build_app,  # type: ignore[arg-type]
        worker=build_worker_app,  # type: ignore[arg-type]
    )
