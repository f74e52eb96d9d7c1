"""The tasks API: organisations and communities, jobs and monthly menus, claims, completions
and their review (verify, hold, approve, reject, revoke), appeals, hazard reports, wishes and
offers, the auditors' listing of verified completions, and community apps' credentials.

This module only builds the app; each resource's endpoints live in ``api/routes/<resource>.py``
and their shared dependencies in ``api/deps.py``."""

from __future__ import annotations

from fastapi import FastAPI

from jifen.kernel.deps import service_lifespan
from jifen.kernel.lane import add_lane
from jifen.kernel.web import create_app
from jifen.tasks.api.routes import (
    appeals,
    audit,
    calls,
    certificates,
    completions,
    credentials,
    honour,
    intake,
    invitations,
    jobs,
    menus,
    organisation,
    partners,
    people,
    reports,
    webhooks,
)
from jifen.tasks.db import queries
from jifen.tasks.settings import TasksSettings

# in this order: the OpenAPI document lists the paths as the routers are included
ROUTERS = (
    organisation.router,
    menus.router,
    jobs.router,
    completions.router,
    appeals.router,
    intake.hazards,
    intake.needs,
    partners.router,
    partners.jobs,
    audit.router,
    reports.router,
    webhooks.router,
    calls.router,
    certificates.router,
    # community apps' credentials live here, where apps post; the tokens work on every service
    credentials.router,
    # the organisation's records of people, and signing in with a phone code (the portal)
    people.people,
    people.signin,
    # invitation links from an officer, exchanged by the app like a phone code
    invitations.router,
    invitations.signin,
    # the opt-in honour roll: a volunteer's own consent, and each community's public roll
    honour.me,
    honour.public,
)


def build_app(settings: TasksSettings | None = None) -> FastAPI:
    from jifen.tasks.metrics import refresh_loop

    settings = settings or TasksSettings()
    app = create_app(
        service="tasks",
        title="Jifen tasks",
        description="Governance jobs, claims, completions and verification. Every state change "
        "is committed with its event (transactional outbox).",
        lifespan=service_lifespan(
            settings,
            queries,
            background={"business-metrics": lambda app: refresh_loop(app.state.pool)},
        ),
    )

    # TooManyAttempts (check-in code guesses) is a refusal like any other: the kernel's handler
    # answers 429 in the caller's language with Retry-After from its retry_after fact
    for router in ROUTERS:
        app.include_router(router)
    # the hot POST answered ahead of FastAPI's general path (same checks, same answers)
    add_lane(app, "POST", "/v1/jobs/{job_id}/completions", jobs.complete_lane)
    return app
