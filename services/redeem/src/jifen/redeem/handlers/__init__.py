"""Commands of the redeem service, one module per resource; each command owns its transaction.

- :mod:`.redemptions`: place, fulfil and cancel a redemption (the API's writes)
- :mod:`.wallets`: the wallet an account may spend from
- :mod:`.ledger_entries`: the ledger's events keeping the wallets (the worker's consumer)
- :mod:`.overdue`: vouchers past their time, events the ledger has not answered (worker loops)
- :mod:`.events`: the events this service records, rebuilt identically from their rows

A wallet is (organisation, account): the ledger's entries of that organisation only. A
redemption spends the wallet of the reward's organisation, which is always the caller's own
(rewards are looked up within it).

Lock order, everywhere: the wallet row, then the redemption row, then the reward row. Every
command that takes more than one of them takes them in this order, so none can deadlock.
Placing a redemption first takes a transaction-scoped advisory lock on its idempotency scope
(organisation, caller, key); nothing else takes those, so the order stays acyclic.
"""

from __future__ import annotations

from jifen.redeem.handlers.events import CANCELLED, PLACED, SOURCE, cancelled_event, placed_event
from jifen.redeem.handlers.ledger_entries import apply_ledger_entry, voucher_code
from jifen.redeem.handlers.overdue import ask_again, expire_due
from jifen.redeem.handlers.redemptions import cancel, fulfil, redeem
from jifen.redeem.handlers.wallets import wallet_view

__all__ = [
    "CANCELLED",
    "PLACED",
    "SOURCE",
    "apply_ledger_entry",
    "ask_again",
    "cancel",
    "cancelled_event",
    "expire_due",
    "fulfil",
    "placed_event",
    "redeem",
    "voucher_code",
    "wallet_view",
]
