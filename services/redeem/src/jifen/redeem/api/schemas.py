"""HTTP models of the redeem API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class RewardIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "merchant_id": "merchant-battery",
                    "name_zh": "电池更换券",
                    "name_en": "Battery swap voucher",
                    "points": 50,
                    "stock": 20,
                }
            ]
        },
    )
    merchant_id: IdStr
    name_zh: str = Field(min_length=1, max_length=200)
    name_en: str = Field(min_length=1, max_length=200)
    points: int = Field(ge=1, le=1_000_000)
    stock: int | None = Field(default=None, ge=0, le=10_000_000, description="null: unlimited")


class RewardOut(BaseModel):
    id: UUID
    org_id: str
    merchant_id: str
    name_zh: str
    name_en: str
    points: int
    stock: int | None
    active: bool
    created_at: datetime


class RedemptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reward_id": "6f1c1a52-5a4e-4b8e-9d7a-0c3a8f6f2b11"}]},
    )
    reward_id: UUID
    account_id: IdStr | None = Field(
        default=None,
        description="Required when an app redeems for a volunteer; a volunteer "
        "redeems for their own account.",
    )


class RedemptionOut(BaseModel):
    id: UUID
    account_id: str
    org_id: str
    reward_id: UUID
    points: int
    status: str
    voucher_code: str | None
    created_at: datetime
    confirmed_at: datetime | None


class WalletOut(BaseModel):
    account_id: str
    ledger_balance: int = Field(description="The balance the ledger last announced.")
    held: int = Field(description="Held for redemptions the ledger has not debited yet.")
    spendable: int
