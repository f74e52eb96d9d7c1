-- The audit tree over the ledger (RFC 6962), its signed checkpoints and witness cosignatures.
-- All four tables are append-only, enforced like ledger_entry.

-- A stable tree position per entry, in the order a single sequencer discovered the committed
-- entries (ids come from a sequence inside concurrent transactions, so id order is not
-- commit order, and a position once given never changes).
CREATE TABLE merkle_leaf (
    position    bigint PRIMARY KEY CHECK (position >= 0),
    -- no foreign key: the verifier, not the database, is what must notice a deleted entry
    entry_id    bigint NOT NULL UNIQUE
);

-- Every complete, aligned subtree: level 0 = leaf hashes, level l index i covers positions
-- [i·2^l, (i+1)·2^l). They never change once complete, so proofs are read from here.
CREATE TABLE merkle_node (
    level       smallint NOT NULL CHECK (level >= 0 AND level < 64),
    idx         bigint   NOT NULL CHECK (idx >= 0),
    hash        bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE TABLE audit_checkpoint (
    tree_size   bigint      PRIMARY KEY CHECK (tree_size >= 0),
    root_hash   bytea       NOT NULL CHECK (length(root_hash) = 32),
    issued_at   text        NOT NULL,
    key_id      text        NOT NULL,
    signature   bytea       NOT NULL CHECK (length(signature) = 64),
    origin      text        NOT NULL
);

CREATE TABLE audit_cosignature (
    tree_size   bigint      NOT NULL REFERENCES audit_checkpoint (tree_size),
    witness     text        NOT NULL,
    public_key  bytea       NOT NULL CHECK (length(public_key) = 32),
    cosigned_at text        NOT NULL,
    signature   bytea       NOT NULL CHECK (length(signature) = 64),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_size, witness)
);

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER merkle_leaf_no_update BEFORE UPDATE OR DELETE ON merkle_leaf
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER merkle_node_no_update BEFORE UPDATE OR DELETE ON merkle_node
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_cosignature_no_update BEFORE UPDATE OR DELETE ON audit_cosignature
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER merkle_leaf_no_truncate BEFORE TRUNCATE ON merkle_leaf
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER merkle_node_no_truncate BEFORE TRUNCATE ON merkle_node
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
