"""The redeem API: the reward catalogue, redemptions and wallets.

Only the app is built here: the routes are in :mod:`jifen.redeem.api.routes` (one router per
resource), what they take in :mod:`jifen.redeem.api.deps`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from jifen.kernel.deps import service_lifespan
from jifen.kernel.lane import add_lane
from jifen.kernel.ratelimit import retry_after_header
from jifen.kernel.web import create_app, localized
from jifen.redeem.api.middleware import NoStore
from jifen.redeem.api.routes import (
    audit,
    merchants,
    org_settings,
    redemptions,
    reports,
    rewards,
    wallets,
)
from jifen.redeem.db import queries
from jifen.redeem.domain.lifecycle import VoucherAttemptsExceeded
from jifen.redeem.settings import RedeemSettings

# the order of the OpenAPI document's paths
ROUTERS = (merchants, rewards, redemptions, wallets, org_settings, audit, reports)


def build_app(settings: RedeemSettings | None = None) -> FastAPI:
    settings = settings or RedeemSettings()
    app = create_app(
        service="redeem",
        title="Jifen redeem",
        description="The points supermarket: rewards with stock, and redemptions that never "
        "overdraw a balance or oversell an item.",
        lifespan=service_lifespan(settings, queries, pool_max_size=20),
    )
    for module in ROUTERS:
        app.include_router(module.router)
    # the hot POST answered ahead of FastAPI's general path (same checks, same answers)
    add_lane(app, "POST", "/v1/redemptions", redemptions.redeem_lane)

    @app.exception_handler(VoucherAttemptsExceeded)
    async def _too_many(request: Request, exc: VoucherAttemptsExceeded) -> JSONResponse:
        """429 with Retry-After: too many wrong voucher codes within the window (in the
        caller's language, like every refusal)."""
        response = localized(
            request, exc.status, exc.detail, title="Too Many Requests", reason=exc.reason,
            **exc.facts,
        )  # fmt: skip
        response.headers["Retry-After"] = retry_after_header(exc.retry_after_seconds)
        return response

    app.add_middleware(NoStore)
    return app
