"""HTTP models of the redeem API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, model_validator

# integers and booleans as JSON has them: "10", 10.0 and true are not 10 (422)
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
IdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class MerchantIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "merchant-battery",
                    "name_zh": "蓬莱换电站",
                    "name_en": "Penglai battery-swap station",
                    "kind": "station",
                }
            ]
        },
    )
    id: IdStr = Field(description="The merchant's id; its merchant tokens carry it as subject.")
    name_zh: Name
    name_en: Name
    kind: Literal["shop", "station", "clinic", "union", "other"] = "shop"


class MerchantOut(BaseModel):
    id: str
    org_id: str
    name_zh: str
    name_en: str
    kind: str
    created_at: datetime


class SettlementLine(BaseModel):
    reward_id: UUID
    name_zh: str
    name_en: str
    value_fen: int | None = Field(description="One reward's money value, in fen")
    fulfilled: int = Field(description="Redemptions handed over in the month")
    points: int = Field(description="Points those redemptions took")
    value_fen_total: int | None = Field(description="fulfilled × value_fen; null: no value")


class SettlementOut(BaseModel):
    """结算单 What a merchant handed over in a calendar month (UTC), per reward."""

    merchant_id: str
    merchant_name_zh: str
    merchant_name_en: str
    month: str
    starts_at: datetime
    ends_at: datetime
    lines: list[SettlementLine]
    fulfilled: int
    points: int
    value_fen: int = Field(description="Sum of the lines' value_fen_total (rewards with one)")
    unvalued: int = Field(description="Redemptions of rewards with no money value stated")


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
                    "monthly_limit": 2,
                },
                {
                    "merchant_id": "clinic-penglai",
                    "name_zh": "免费体检",
                    "name_en": "Free health check",
                    "kind": "service",
                    "points": 80,
                    "stock": None,
                    "daily_quota": 10,
                    "community_id": "penglai-grid",
                },
            ]
        },
    )
    merchant_id: IdStr = Field(
        description="A merchant of your organisation; an unregistered id is registered "
        "with its id as its name."
    )
    name_zh: Name
    name_en: Name
    kind: Literal["goods", "service", "voucher"] = "goods"
    points: Int = Field(ge=1, le=1_000_000)
    stock: Int | None = Field(default=None, ge=0, le=10_000_000, description="null: unlimited")
    daily_quota: Int | None = Field(
        default=None, ge=1, le=1_000_000, description="Unlimited rewards only: per UTC day."
    )
    monthly_limit: Int | None = Field(
        default=None, ge=1, le=1_000, description="Per member and calendar month (UTC)."
    )
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    community_id: IdStr | None = Field(
        default=None, description="Only members redeeming for this community may take it."
    )
    voucher_ttl_seconds: Int | None = Field(
        default=None,
        ge=1,
        le=366 * 24 * 3600,
        description="How long a voucher stays valid once issued; default: the service's.",
    )
    value_fen: Int | None = Field(
        default=None,
        ge=0,
        le=100_000_000,
        description="货值（分）What one is worth in money, in fen (1 yuan = 100 fen): what the "
        "merchant's monthly settlement and the reports count as value redeemed. Fixed once "
        "listed (a new price is a new reward); null: no money value stated.",
    )

    @model_validator(mode="after")
    def _coherent(self) -> RewardIn:
        if self.daily_quota is not None and self.stock is not None:
            raise ValueError("daily_quota applies to unlimited rewards (stock null) only")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class RewardPatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"active": False}, {"stock": 40}]}
    )
    active: Bool | None = None
    stock: Int | None = Field(default=None, ge=0, le=10_000_000, description="New stock level.")
    valid_until: AwareDatetime | None = None


class RewardOut(BaseModel):
    id: UUID
    org_id: str
    merchant_id: str
    name_zh: str
    name_en: str
    kind: str
    points: int
    stock: int | None
    daily_quota: int | None
    monthly_limit: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    community_id: str | None
    voucher_ttl_seconds: int | None
    active: bool
    created_at: datetime
    value_fen: int | None = None


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
    community_id: IdStr | None = Field(
        default=None, description="The member's community, for community-restricted rewards."
    )


class RedemptionOut(BaseModel):
    id: UUID
    account_id: str
    org_id: str
    reward_id: UUID
    points: int
    status: str = Field(
        description="pending, confirmed (voucher issued), fulfilled, cancelling (refund "
        "asked for once the debit arrives), cancelled or expired"
    )
    voucher_code: str | None = Field(
        description="Shown to the member (and their app) only; the merchant must be shown it."
    )
    created_at: datetime
    confirmed_at: datetime | None
    expires_at: datetime | None = None
    fulfilled_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class FulfilIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"voucher_code": "3F9A2-C41D0-77B1E-0A9C4"}]},
    )
    voucher_code: str = Field(min_length=4, max_length=64)


class CancelIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "sold out"}]}
    )
    reason: str = Field(default="cancelled", min_length=1, max_length=500)


class WalletOut(BaseModel):
    account_id: str
    ledger_balance: int = Field(description="The balance the ledger last announced.")
    held: int = Field(description="Held for redemptions the ledger has not debited yet.")
    maturing: int = Field(description="Credited within the fraud window: not yet spendable.")
    spendable: int
    frozen: bool = Field(
        description="A reversal took the ledger below what is spent: no redemptions until "
        "it is back above zero."
    )
    fraud_window_seconds: int


class OrgSettingsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"fraud_window_seconds": 7 * 86400}]}
    )
    fraud_window_seconds: Int = Field(
        ge=0, le=366 * 86400, description="Points credited less than this ago are not spendable."
    )


class OrgSettingsOut(BaseModel):
    org_id: str
    fraud_window_seconds: int
    updated_at: datetime | None


class AuditRedemption(BaseModel):
    redemption_id: UUID
    account_id: str
    reward_id: UUID
    points: int
    status: str
    placed_event_id: UUID | None
    cancelled_event_id: UUID | None
    created_at: datetime
    cancelled_at: datetime | None


class AuditPage(BaseModel):
    items: list[AuditRedemption]
    next_cursor: str | None


class FrozenWallet(BaseModel):
    account_id: str
    ledger_balance: int
    held: int
    shortfall: int = Field(description="Points the account must earn to be back at zero.")
    since: datetime = Field(description="When the wallet last changed.")
