"""The redeem service's own metrics."""

from __future__ import annotations

from prometheus_client import Counter

REDEMPTIONS = Counter(
    "jifen_redeem_redemptions_total",
    "Redemption requests by outcome: placed, replayed (a repeated Idempotency-Key), or the "
    "refusal's reason.",
    ["outcome"],
)
SETTLED = Counter(
    "jifen_redeem_redemptions_settled_total",
    "Redemptions leaving the confirmed state, by how: fulfilled, cancelled or expired.",
    ["how"],
)
ASKED_AGAIN = Counter(
    "jifen_redeem_events_resent_total",
    "Placed or cancelled events sent again because the ledger's answer had not arrived in time "
    "(a forgetful broker, a stuck consumer).",
    ["type"],
)
