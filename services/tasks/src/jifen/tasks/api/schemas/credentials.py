"""HTTP models of community apps' credentials."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CredentialIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"app_id": "app-zhongbao", "writes_per_minute": 600}]},
    )
    app_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="The app's name, used as the subject of its tokens",
        examples=["app-zhongbao"],
    )
    writes_per_minute: int = Field(default=600, ge=1, le=60_000, strict=True)


class CredentialOut(BaseModel):
    id: uuid.UUID
    org_id: str
    app_id: str
    writes_per_minute: int
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedCredential(CredentialOut):
    secret: str = Field(description="Shown once; only its SHA-256 is stored")


class ExchangeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"credential": "jfa_" + "x" * 43}]},
    )
    credential: str = Field(min_length=8, max_length=200, pattern=r"^jfa_[A-Za-z0-9_-]+$")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int
    app_id: str
    org_id: str
