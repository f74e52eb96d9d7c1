-- The transactional outbox and the inbox of applied event ids, identical in every service.

-- An event is committed here in the same transaction as the state change it reports; the
-- relay publishes it and then deletes the row, so a change is never committed without its
-- event and an event never published without its commit.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotent consumers: the id of every event applied, written in the same transaction as
-- its effect; a redelivery hits the primary key and changes nothing.
CREATE TABLE applied_event (
    event_id    uuid        PRIMARY KEY,
    event_type  text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
