"""HTTP models of invitation links (an officer's invitation of a person on the records, and the
community app's exchange of its token for the person's sessions)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jifen.tasks.api.schemas.common import IdStr
from jifen.tasks.api.schemas.people import Phone

Token = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{20,100}$", examples=["q3Vn…"])]


class InvitationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"person_id": "vol-0001"}, {"phone": "13800000001"}]},
    )
    person_id: IdStr | None = Field(None, description="The person on the records, by id")
    phone: Phone | None = Field(None, description="…or by their phone number on the records")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.person_id is None) == (self.phone is None):
            raise ValueError("give person_id or phone, one of them")
        return self


class InvitationOut(BaseModel):
    id: UUID
    org_id: str
    person_id: str
    phone: str = Field(description="The number, masked")
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class IssuedInvitation(InvitationOut):
    token: str = Field(
        description="Shown this once; only its hash is kept. The link is the app's, e.g. "
        "<portal>/invite/<token>"
    )
    expires_in: int = Field(description="Seconds the token is valid")
    roles: list[str] = Field(description="The roles the records give the person now")


class InvitationSigninIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"token": "q3VnX0k2bW9wZ3R4eXo3c2l1bG9wYXNkZmdo"}]},
    )
    token: Token
