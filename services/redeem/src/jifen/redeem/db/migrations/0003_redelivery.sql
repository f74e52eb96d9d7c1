-- Asking the ledger again: a broker that forgets must not strand a redemption. The worker
-- re-sends (same event id: the ledger absorbs duplicates) a placed event whose debit it has
-- not seen, and a cancelled event whose refund it has not seen, after a timeout.

ALTER TABLE redemption
    ADD COLUMN refund_entry_id  bigint,
    ADD COLUMN refunded_at      timestamptz,
    -- when the event was last (re)sent; the timeout counts from here
    ADD COLUMN asked_at         timestamptz;
UPDATE redemption SET asked_at = COALESCE(cancelled_at, created_at);
CREATE INDEX redemption_awaiting_debit ON redemption (asked_at) WHERE status IN ('pending', 'cancelling');
CREATE INDEX redemption_awaiting_refund ON redemption (asked_at)
    WHERE cancelled_event_id IS NOT NULL AND refunded_at IS NULL;
