"""The points service's commands, one module per concern; each runs in (or opens) the
transaction that records its effect and the events announcing it.

- ``ledger``: append postings to the ledger (the one write path for entries, used by the
  ledger worker for a batch of events and by an approved adjustment) and announce them;
- ``adjustments``: an admin's request and another admin's decision.
"""

from jifen.points.handlers.adjustments import (
    AdjustmentRefused,
    decide_adjustment,
    request_adjustment,
)
from jifen.points.handlers.ledger import append_postings

__all__ = ["AdjustmentRefused", "append_postings", "decide_adjustment", "request_adjustment"]
