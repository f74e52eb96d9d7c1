"""HTTP models of the points API (not the event contracts)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, StrictInt


class Balance(BaseModel):
    """The account's points in the organisation of the caller's token (a ledger account is
    (organisation, account); the same person's points elsewhere are not in it)."""

    account_id: str
    balance: int = Field(
        description="Sum of the account's entries in this organisation, in whole points."
    )
    earned: int = Field(description="Credits less reversals.")
    spent: int = Field(description="Debits less refunds.")
    entries: int = Field(
        description="Position of the newest entry in the (organisation, account) chain."
    )

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


class Statement(BaseModel):
    org_id: str
    account_id: str
    month: str
    opening_balance: int
    closing_balance: int
    earned_by_category: dict[str, int] = Field(
        description="Credits less reversals, per job category."
    )
    spent_by_reward: dict[str, int] = Field(description="Debits less refunds, per reward id.")
    adjustments: int
    entries: int

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "org_id": "jiangmen-riders",
                    "account_id": "vol-0001",
                    "month": "2026-11",
                    "opening_balance": 40,
                    "closing_balance": 90,
                    "earned_by_category": {"meal_delivery": 80},
                    "spent_by_reward": {"6f1c1a52-5a4e-4b8e-9d7a-0c3a8f6f2b11": 30},
                    "adjustments": 0,
                    "entries": 5,
                }
            ]
        }
    }


class AdjustmentIn(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {"account_id": "vol-0001", "amount": -20, "reason": "paper record entered twice"}
            ]
        },
    }
    account_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="The account in your organisation (the token's org) to adjust.",
    )
    # strict: JSON true, 5.0 or "5" are not points
    amount: StrictInt = Field(
        ge=-1_000_000, le=1_000_000, description="Non-zero whole points (a JSON integer)."
    )
    reason: str = Field(min_length=1, max_length=500)


class DecisionIn(BaseModel):
    model_config = {"extra": "forbid"}
    note: str = Field(default="", max_length=500)


class AdjustmentOut(BaseModel):
    id: str
    org_id: str
    account_id: str
    amount: int
    reason: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    event_id: str | None
