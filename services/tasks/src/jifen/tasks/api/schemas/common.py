"""Shared field types of the tasks API: ids, categories, free text, timestamps, a place, a
reason, a status change."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from jifen.tasks.domain import commands

# a month as YYYY-MM (this century): the month of a menu, a report, a list
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"

IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", examples=["vol-0001"])]

CategoryCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        examples=["meal_delivery"],
        description="A built-in category (meal_delivery, elder_visit, traffic_guidance, "
        "civility_persuasion, hazard_patrol, free_repair_day, lost_person_search, "
        "emergency_response, other) or one your organisation added (GET /v1/categories).",
    ),
]


def _no_control(value: str) -> str:
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValueError("control characters are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_control)]


def _plausible(ts: datetime) -> datetime:
    if not 2000 <= ts.year <= 2200:
        raise ValueError("timestamp out of range (years 2000-2200)")
    return ts


When = Annotated[AwareDatetime, AfterValidator(_plausible)]


class Place(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Annotated[Text, Field(max_length=300)] = ""
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)

    def to_place(self) -> commands.Place:
        return commands.Place(address=self.address, lat=self.lat, lng=self.lng)


# counted in characters and sized for Chinese (issue 21): "重复" or "已修" is a whole reason
Reason = Annotated[
    Text,
    Field(min_length=2, max_length=500, examples=["照片地址不符 photo shows a different address"]),
]


class StatusChangeOut(BaseModel):
    status: str
    actor: str
    reason: str
    job_id: UUID | None
    at: datetime
