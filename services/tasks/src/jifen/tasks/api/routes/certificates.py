"""/v1/certificates: a volunteer's service record as a certificate anyone can check (issue 21).

Issued by the volunteer (their own), their app, an officer or the admin; read back by anyone
who has the code (it is on the paper): that is what checking a certificate means, and the code
is 100 random bits, so holding it is the only way to it."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Response

from jifen.kernel.auth import Principal, Role, require
from jifen.kernel.errors import NotFound
from jifen.kernel.i18n import Said
from jifen.kernel.web import ParsedBodyRoute, max_body
from jifen.tasks.api.deps import REFUSALS, Conn, Q, acting_for
from jifen.tasks.api.schemas.certificates import CertificateIn, CertificateOut
from jifen.tasks.certificate_pdf import render
from jifen.tasks.domain.certificates import CODE
from jifen.tasks.domain.reports import period
from jifen.tasks.handlers.certificates import issue_certificate

router = APIRouter(prefix="/v1/certificates", tags=["certificates"], route_class=ParsedBodyRoute)
Issuer = Annotated[Principal, require(Role.VOLUNTEER, Role.APP, Role.OFFICER, Role.ADMIN)]
Code = Annotated[str, Path(pattern=CODE.pattern, examples=["JF-7K2QX-M9ZD4-R8T3V-0HP6W"])]


def _out(row: asyncpg.Record) -> CertificateOut:
    d: dict[str, Any] = dict(row)
    d["service_hours"] = round(int(d["service_minutes"]) / 60, 1)
    d["pdf"] = f"/v1/certificates/{d['code']}/pdf"
    return CertificateOut(**d)


async def _get(conn: asyncpg.Connection, q: Any, code: str) -> asyncpg.Record:
    row = await conn.fetchrow(q["get_certificate"], code)
    if row is None:
        raise NotFound(Said(f"没有核验码为 {code} 的证明", f"no certificate with the code {code}"))
    return row


@router.post(
    "",
    status_code=201,
    response_model=CertificateOut,
    summary="Issue a volunteer's service certificate for a period (志愿服务证明)",
    description="The volunteer's verified completions in [from, until): service hours (the jobs' "
    "service_minutes), services, points, and each one; kept under a verification code that "
    "anyone can check (GET /v1/certificates/{code}, and its PDF). A volunteer issues their "
    "own; their app, an officer or the admin any of the organisation's volunteers'.",
    responses=REFUSALS,
    openapi_extra=max_body(1024),
)
async def issue(body: CertificateIn, conn: Conn, q: Q, who: Issuer) -> CertificateOut:
    acting_for(who, body.account_id)
    period(None, body.starts_on, body.ends_on, today=body.starts_on)  # the bounds' rules
    row = await issue_certificate(
        conn, q, org=who.org, account_id=body.account_id, issued_by=who.subject,
        starts_on=body.starts_on, ends_on=body.ends_on,
    )  # fmt: skip
    return _out(row)


@router.get(
    "/{code}",
    response_model=CertificateOut,
    summary="Check a certificate by its code (anyone, no token)",
    description="What was issued under the code: a certificate whose figures differ from these "
    "was altered.",
)
async def check(code: Code, conn: Conn, q: Q) -> CertificateOut:
    return _out(await _get(conn, q, code))


@router.get(
    "/{code}/pdf",
    summary="The certificate as a PDF (anyone, no token)",
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No such code"}},
)
async def pdf(code: Code, conn: Conn, q: Q) -> Response:
    row = await _get(conn, q, code)
    body = render(dict(row), f"/v1/certificates/{code}")
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="certificate-{code}.pdf"'},
    )
