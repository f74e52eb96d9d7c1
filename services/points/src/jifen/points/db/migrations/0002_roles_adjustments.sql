-- The service's own role, reward attribution for statements, and two-person adjustments.

-- The points processes connect as jifen_points_app: it may read and append ledger entries but
-- never change them (no UPDATE, DELETE or TRUNCATE grant); the trigger of 0001 refuses those
-- even for the owner. Migrations run as the owner.
DO $$
BEGIN
    CREATE ROLE jifen_points_app LOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END $$;

GRANT USAGE ON SCHEMA public TO jifen_points_app;
GRANT SELECT, INSERT ON ledger_entry TO jifen_points_app;
GRANT SELECT, INSERT, UPDATE ON account TO jifen_points_app;
GRANT SELECT, INSERT, DELETE ON outbox TO jifen_points_app;
GRANT SELECT, INSERT ON applied_event TO jifen_points_app;
GRANT SELECT ON schema_migration TO jifen_points_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO jifen_points_app;
-- tables added by later migrations (checkpoints, signals, …) are the service's to write;
-- the ledger itself keeps the narrow grant above
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO jifen_points_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO jifen_points_app;

-- which reward a debit or refund was for (reporting only: statements group spending by it)
ALTER TABLE ledger_entry ADD COLUMN reward_id uuid;

-- An adjustment is requested by one admin and takes effect only when another admin of the
-- same organisation approves it; it then becomes an 'adjustment' entry like any other.
CREATE TABLE adjustment (
    id            uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    account_id    text        NOT NULL,
    amount        bigint      NOT NULL CHECK (amount <> 0),
    reason        text        NOT NULL CHECK (length(reason) > 0),
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by  text        NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    decided_by    text,
    decided_at    timestamptz,
    decision_note text,
    event_id      uuid        UNIQUE,
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX adjustment_org ON adjustment (org_id, status, requested_at);
