-- The ledger is its own outbox (issue #18): a relay (jifen.points.ledger_relay) publishes each
-- entry's jifen.points.entry.appended.v1 from its row, instead of a second row per entry
-- written to `outbox` and deleted again.
--
-- Entries get ids from a sequence inside concurrent transactions, so id order is not commit
-- order: tailing by id would skip an entry whose transaction commits after a later id was
-- read. Each entry records instead `tx`, a transaction id at least its writer's own
-- (pg_current_xact_id()). Every transaction with an id below the xmin of a snapshot has ended,
-- so the rows with tx below it are final: the relay publishes, in (tx, id) order, those past
-- its cursor and below the xmin of its statement's snapshot, and moves the cursor only after
-- the broker acknowledged them.
--
-- Order per (org, account): a writer holds the account head's row lock while it takes its
-- ids and writes, but may have been given its transaction id before waiting for that lock
-- (an earlier account's lock, an adjustment's own UPDATE), so a later entry of an account
-- could carry a lower xid than its predecessor. The writer therefore stores
-- tx = greatest(its own xid, the head's head_tx) and sets head_tx to it: tx never decreases
-- along an account's chain, and ids (taken under the lock) break ties in chain order. Still
-- safe to tail: tx >= the writer's own xid, so it is final once below a snapshot's xmin.
--
-- Entries written before this migration (tx NULL) were announced through `outbox`, where the
-- ones not yet published still are; the relay publishes nothing of its own until those are
-- gone (legacy_outbox_id), so an account's old events still go out before its new ones.
-- Deploy with the points workers stopped (as for 0011): an old-version writer still running
-- gets tx from the default (its own xid) and announces through `outbox` as well, which
-- consumers absorb (they dedupe by event id).

ALTER TABLE ledger_entry ADD COLUMN tx xid8;  -- no rewrite: NULL for the entries before
ALTER TABLE ledger_entry ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX ledger_entry_tx ON ledger_entry (tx, id) WHERE tx IS NOT NULL;

ALTER TABLE account ADD COLUMN head_tx xid8;

-- The relay's progress: the (tx, id) of the last entry the broker acknowledged. One row.
CREATE TABLE ledger_relay_cursor (
    id                smallint    PRIMARY KEY CHECK (id = 1),
    tx                xid8        NOT NULL,
    entry_id          bigint      NOT NULL,
    -- the newest outbox row when this migration ran: entries' events up to it go out first
    legacy_outbox_id  bigint      NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_relay_cursor (id, tx, entry_id, legacy_outbox_id)
SELECT 1, '0'::xid8, 0, coalesce(max(id), 0) FROM outbox;
REVOKE ALL ON ledger_relay_cursor FROM jifen_points_app;
GRANT SELECT, UPDATE ON ledger_relay_cursor TO jifen_points_app;
