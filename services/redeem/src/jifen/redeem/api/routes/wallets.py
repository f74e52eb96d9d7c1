"""Wallets: what an account may spend in the caller's organisation."""

from __future__ import annotations

from fastapi import APIRouter

from jifen.kernel.auth import Role
from jifen.kernel.web import ParsedBodyRoute
from jifen.redeem import handlers
from jifen.redeem.api.deps import Conn, Q, WalletReader
from jifen.redeem.api.schemas import WalletOut
from jifen.redeem.domain.wallet import no_wallet

router = APIRouter(prefix="/v1/wallets", tags=["wallets"], route_class=ParsedBodyRoute)


@router.get("/{account_id}", response_model=WalletOut, summary="Spendable points of an account")
async def get_wallet(conn: Conn, q: Q, who: WalletReader, account_id: str) -> WalletOut:
    if who.role == Role.VOLUNTEER and who.subject != account_id:
        raise no_wallet(account_id)
    # the wallet of the caller's own organisation only: what the account holds in another
    # scheme is neither shown nor counted
    if who.role != Role.VOLUNTEER and not await conn.fetchval(
        q["wallet_in_org"], who.org, account_id
    ):
        raise no_wallet(account_id, who.org)
    w, window = await handlers.wallet_view(conn, q, account_id, who.org)
    return WalletOut(
        account_id=account_id,
        ledger_balance=w.ledger_balance,
        held=w.held,
        maturing=w.maturing,
        spendable=w.spendable,
        frozen=w.frozen,
        fraud_window_seconds=window,
    )
