"""Commands of the tasks service: one async function each, by resource; each owns its
transaction. The domain decides, the repository (named queries) writes, and the outbox
records the event in the same transaction. They take ``domain.commands``, never the API's
models.

- ``jobs``: publish a job, a menu, a rolled month; claim and withdraw
- ``completions``: post a completion (``checkin``: its code) and review it
- ``credit``: verify or hold (``decide``), the ledger's acknowledgements, republishing
- ``appeals``; ``hazards`` and ``needs``, moved by one helper in ``intake``
- ``organisation``: communities and their members; ``partners``: partners, their members,
  the jobs they take
- ``history``: every status change and its event
"""

from __future__ import annotations

from jifen.tasks.handlers.appeals import decide_appeal, file_appeal
from jifen.tasks.handlers.calls import answer_call, ask_for_help, mobilise, remind_claims
from jifen.tasks.handlers.completions import (
    approve_completion,
    complete_job,
    reject_completion,
    revoke_completion,
    verify_completion,
)
from jifen.tasks.handlers.credit import mark_credited, republish_uncredited
from jifen.tasks.handlers.hazards import close_hazard, merge_hazard, report_hazard, triage_hazard
from jifen.tasks.handlers.history import SOURCE
from jifen.tasks.handlers.jobs import (
    claim_job,
    end_series,
    insert_job,
    publish_job,
    publish_menu,
    roll_due,
    roll_menu,
    withdraw_claim,
)
from jifen.tasks.handlers.needs import (
    claim_need,
    close_need,
    menu_from_needs,
    need_to_job,
    post_need,
)
from jifen.tasks.handlers.organisation import check_community, check_member, register_member
from jifen.tasks.handlers.partners import add_member, add_partner, take_job
from jifen.tasks.handlers.webhooks import deliver_due

__all__ = [
    "SOURCE",
    "add_member",
    "add_partner",
    "answer_call",
    "approve_completion",
    "ask_for_help",
    "check_community",
    "check_member",
    "claim_job",
    "claim_need",
    "close_hazard",
    "close_need",
    "complete_job",
    "decide_appeal",
    "deliver_due",
    "end_series",
    "file_appeal",
    "insert_job",
    "mark_credited",
    "menu_from_needs",
    "merge_hazard",
    "mobilise",
    "need_to_job",
    "post_need",
    "publish_job",
    "publish_menu",
    "register_member",
    "reject_completion",
    "remind_claims",
    "report_hazard",
    "republish_uncredited",
    "revoke_completion",
    "roll_due",
    "roll_menu",
    "take_job",
    "triage_hazard",
    "verify_completion",
    "withdraw_claim",
]
