"""HTTP models of the points API (not the event contracts)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Balance(BaseModel):
    account_id: str
    balance: int = Field(description="Sum of all entries of the account, in whole points.")
    earned: int = Field(description="Credits less reversals.")
    spent: int = Field(description="Debits less refunds.")
    entries: int = Field(description="Number of entries in the account's chain.")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"account_id": "vol-0001", "balance": 120, "earned": 150, "spent": 30, "entries": 4}
            ]
        }
    }


class EntryOut(BaseModel):
    entry_id: int
    account_seq: int
    kind: str
    amount: int
    balance_after: int
    org_id: str
    category: str | None
    cause_event_id: str
    cause_type: str
    job_id: str | None
    completion_id: str | None
    redemption_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    entry_hash: str


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_cursor: int | None = Field(
        description="Pass as `before` to get the next (older) page; null on the last page."
    )
