"""The wallet an account may spend from: the ledger's balance in one organisation, less what
is held, with that organisation's fraud window."""

from __future__ import annotations

import asyncpg

from jifen.kernel.db import Queries
from jifen.redeem.domain.wallet import Wallet


async def wallet_view(
    conn: asyncpg.Connection, q: Queries, account_id: str, org: str, *, lock: bool = False
) -> tuple[Wallet, int]:
    """The account's wallet in ``org`` (locked when asked) with that organisation's fraud
    window. Points the account holds in any other organisation are not in it."""
    # the organisation's setting first: it needs no lock, so it is not read while holding one
    window = await conn.fetchval(q["fraud_window"], org) or 0
    row = await conn.fetchrow(q["lock_wallet" if lock else "get_wallet"], org, account_id)
    recent = (
        await conn.fetchval(q["recent_credits"], org, account_id, float(window)) if window else 0
    )
    balance, held = (row["ledger_balance"], row["held"]) if row else (0, 0)
    return Wallet(account_id, balance, held, recent), window
