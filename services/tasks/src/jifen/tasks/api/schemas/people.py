"""HTTP models of the organisation's records of people and of signing in with a phone code."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from jifen.tasks.api.schemas.common import IdStr, Text
from jifen.tasks.domain.signin import normalise_phone


def _phone(value: str) -> str:
    phone = normalise_phone(value)
    if phone is None:
        raise ValueError("not a phone number: 6 to 15 digits, optionally after a +")
    return phone


Phone = Annotated[
    str, Field(min_length=6, max_length=24, examples=["13800000001"]), AfterValidator(_phone)
]
PersonRole = Literal["volunteer", "officer", "merchant", "admin", "auditor"]


class PersonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "person_id": "vol-0001",
                    "phone": "13800000001",
                    "role": "volunteer",
                    "display_name": "李师傅",
                }
            ]
        },
    )
    person_id: IdStr = Field(
        description="The subject of the person's tokens (a volunteer's account)"
    )
    phone: Phone
    role: PersonRole
    display_name: Annotated[Text, Field(max_length=100)] = ""


class PersonOut(BaseModel):
    org_id: str
    person_id: str
    phone: str
    role: str
    display_name: str
    created_by: str
    created_at: datetime


class CodeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"phone": "13800000001"}]}
    )
    phone: Phone


class CodeSent(BaseModel):
    sent_to: str = Field(description="The number, masked")
    expires_in: int = Field(description="Seconds the code is valid")
    detail: str


class SigninIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"phone": "13800000001", "code": "123456"}]}
    )
    phone: Phone
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class RoleSession(BaseModel):
    role: str
    person_id: str = Field(description="The token's subject in this role")
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme, not a secret)
    expires_in: int


class SignedIn(BaseModel):
    person_id: str
    display_name: str
    org_id: str
    sessions: list[RoleSession] = Field(description="One token per role the records give")


class MessageOut(BaseModel):
    id: int
    org_id: str
    channel: str
    recipient: str
    body: str
    created_at: datetime
