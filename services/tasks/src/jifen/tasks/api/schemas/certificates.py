"""HTTP models of service certificates (issue 21, part 2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import IdStr


class CertificateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"account_id": "vol-0001", "from": "2026-01-01", "until": "2027-01-01"}]
        },
        populate_by_name=True,
    )
    account_id: IdStr
    starts_on: date = Field(alias="from", description="First day (UTC)")
    ends_on: date = Field(alias="until", description="The day after the last")


class CertificateOut(BaseModel):
    code: str = Field(description="核验码 Anyone checks it at GET /v1/certificates/{code}")
    org_id: str
    org_name: str
    account_id: str
    display_name: str
    starts_on: date = Field(serialization_alias="from")
    ends_on: date = Field(serialization_alias="until")
    jobs: int
    service_minutes: int
    service_hours: float
    points: int
    lines: list[dict[str, Any]] = Field(description="Each verified completion of the period")
    issued_by: str
    issued_at: datetime
    pdf: str = Field(description="The certificate as a PDF (public, by its code)")
