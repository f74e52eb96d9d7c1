"""HTTP models of the opt-in honour roll: a volunteer's own consent, and a community's roll for
a month (display names, verified services and points; never a phone number or an account id)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class HonourConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"listed": True}]})
    listed: bool = Field(description="true: list me on my communities' honour rolls")


class HonourConsentOut(BaseModel):
    listed: bool
    display_name: str = Field(description="The name the roll shows, from the records")
    changed_at: datetime | None


class HonourEntry(BaseModel):
    rank: int
    display_name: str
    services: int = Field(description="Completions verified in the month")
    points: int = Field(description="The jobs' whole points of those completions")


class HonourRoll(BaseModel):
    community_id: str
    community_name: str
    month: str
    since: datetime = Field(description="The month's first instant (UTC)")
    until: datetime = Field(description="The next month's first instant (UTC)")
    roll: list[HonourEntry] = Field(
        description="The first `limit` places, highest points first (a ranking, not a paged list)"
    )
