"""The offline verifier's logic: from an export, the checkpoints a union kept and the operator's
public keys, recompute every hash, chain, balance and the tree, and list what is wrong.

Pure: the caller feeds parsed export records one at a time (so a million entries stream
through in one pass) and reads findings at the end. Every finding names the position and,
where there is one, the entry and account it is about.

What is checked, per entry the union may see (its organisation's):
- ``entry_hash`` equals SHA-256 of the entry's canonical content;
- the account's chain: ``account_seq`` follows the previous one with no gap, ``prev_hash``
  is the previous entry's ``entry_hash`` (tree order must equal chain order, because an
  account's entries are committed one batch after the other). The chain is the ledger
  account's, (org_id, account_id), for entries after the header's ``legacy_cutover``; for
  entries up to it (written before migration 0011) it is the bare account_id's, and the
  first new entry of (org, account) continues from that org's last legacy entry of the
  account (its seq + 1, its hash, the org's legacy sum as the previous balance). A legacy
  chain gap no longer than the other organisations' redacted positions since the chain's
  last visible entry is explained (counted, not a finding); a full export has none;
- ``balance_after`` = previous balance + ``amount``; a debit that leaves the balance below
  zero is an overdraft and flagged; a reversal or adjustment that does is a recorded freeze
  (the points were already spent; the account may not redeem until it is back above zero),
  counted on the account, not a finding;
- the ledger's rules: one entry per cause event, at most one credit and one reversal per
  completion and one debit and one refund per redemption, a reversal only after a credit, a
  refund only after a debit, amounts signed by kind;
- the leaf hash recomputed from the content equals the one in the operator's tree.
And over the whole export: the tree root at the export's checkpoint and at every saved
checkpoint's size equals the signed root; every signature holds; no saved checkpoint is
contradicted; entries already verified earlier (``previous_leaves``) are unchanged.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, checkpoint_signature_ok
from jifen.points.audit.domain.merkle import EMPTY_ROOT, frontier_keys, node_hash, root_of
from jifen.points.domain.chain import CANONICAL_FIELDS, GENESIS
from jifen.points.domain.entry import LEAF as LEAF_FIELDS  # = audit.domain.canonical's

EXPORT_FORMAT = "jifen.points.audit.export.v1"
SIGNS = {"credit": 1, "reversal": -1, "debit": -1, "refund": 1}
LEAF_KEYS = frozenset(LEAF_FIELDS)
_LEAF_ONLY = tuple(f for f in LEAF_FIELDS if f not in CANONICAL_FIELDS)
_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_MAX_GAP = 1 << 24  # positions, when the header says no end: 512 MiB of leaves to fill
_sha256 = hashlib.sha256
# a leaf's hasher with its domain byte already fed: a copy per leaf instead of concatenating
# the byte onto ~640 bytes of content and starting a new hasher (~0.4 µs an entry, measured)
_LEAF_HASHER = _sha256(b"\x00")


# The typed export line of the fast path (``Verifier.feed_lines``): an entry line whose every
# field is there, nothing else, and of the types a genuine export writes (integers that fit in
# 64 bits, the rest text, references and the free text fields possibly null). Fields are
# declared in sorted order, so msgspec encodes an entry byte for byte as the canonical JSON
# (orjson with sorted keys: tests/unit/points/test_audit_fast_lines.py holds them together).
# Any other line is decoded by orjson and checked by ``feed_many``, exactly as before.
_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_INTS = frozenset({"account_seq", "amount", "balance_after", "entry_id"})
_TEXT = frozenset({"occurred_at"})  # sliced by the monthly totals: text, never null


def _field_type(name: str) -> Any:
    return _I64 if name in _INTS else str if name in _TEXT else str | None


_LeafEntry = msgspec.defstruct(
    "_LeafEntry",
    [(f, _field_type(f)) for f in sorted(LEAF_FIELDS)],
    forbid_unknown_fields=True,
    gc=False,  # text and numbers only: never in a cycle, so not tracked by the collector
)
_HashedContent = msgspec.defstruct(
    "_HashedContent", [(f, _field_type(f)) for f in sorted(CANONICAL_FIELDS)], gc=False
)
_EntryLine = msgspec.defstruct(
    "_EntryLine",
    [("position", _I64), ("leaf_hash", str), ("entry", _LeafEntry)],
    forbid_unknown_fields=True,
    gc=False,
)
_decode_line = msgspec.json.Decoder(_EntryLine).decode


def _as_dict(rec: Any) -> dict[str, Any]:
    """The record orjson gives for a line msgspec decoded as ``_EntryLine`` (that shape,
    those types: the same keys and values)."""
    return {
        "position": rec.position,
        "leaf_hash": rec.leaf_hash,
        "entry": msgspec.structs.asdict(rec.entry),
    }


_encode = msgspec.json.Encoder().encode
_content_of = attrgetter(*sorted(CANONICAL_FIELDS))
_loads = orjson.loads


def sign_ref_completion(kind: str) -> bool:
    return kind == "credit" or kind == "reversal"


NEEDS = {"reversal": "credit", "refund": "debit"}
# which finding names a fault when one entry has several: the entry inserted, missing or
# moved first, then what is wrong with the entry itself, then rule breaks and consequences
RANK = {
    "bad_export": 0,
    "partial_export": 0,
    "entry_inserted": 0,
    "entry_moved": 0,
    "entry_missing": 0,
    "position_gap": 0,
    "position_out_of_order": 1,
    "malformed_entry": 10,
    "entry_hash_mismatch": 10,
    "leaf_mismatch": 11,
    "chain_order": 12,
    "chain_gap": 12,
    "chain_broken": 12,
    "balance_mismatch": 13,
    "bad_amount": 13,
    "changed_since_verified": 30,
    "root_mismatch": 30,
    "truncated_export": 30,
}
_OTHER = 20  # rule breaks and the rest: faults of their own


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    position: int | None = None
    entry_id: int | None = None
    account_id: str | None = None
    # the other findings of the same fault (consequences), folded into this one
    also: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = []
        if self.entry_id is not None:
            where.append(f"entry {self.entry_id}")
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.account_id is not None:
            where.append(f"account {self.account_id}")
        also = f" (also: {', '.join(self.also)})" if self.also else ""
        return f"[{self.code}] {', '.join(where) or 'ledger'}: {self.message}{also}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "position": self.position,
            "entry_id": self.entry_id,
            "account_id": self.account_id,
            "also": list(self.also),
        }


@dataclass(slots=True)
class AccountState:
    seq: int = 0
    hash: str = GENESIS
    balance: int = 0
    last_entry: int | None = None
    min_balance: int = 0
    earned: int = 0
    spent: int = 0
    entries: int = 0
    # entries after which the balance was below zero because of a reversal or adjustment
    frozen_entries: int = 0
    # redacted positions seen when this chain's last entry was (explains legacy gaps)
    redacted_mark: int = 0
    # positions missing from the export (or from the ledger) by then (explains chain gaps)
    missing_mark: int = 0
    # the chain's last states: (seq, hash, balance, entry_id, position, prev_hash, amount,
    # kind), oldest first, the first one the state before its first entry here
    hist: list[tuple[Any, ...]] = field(default_factory=list)
    # two entries claimed one place in this chain; the next entry shows which one it follows
    fork: Fork | None = None


@dataclass(slots=True)
class Fork:
    """Two entries of one chain, ``a`` before ``b`` in the tree, with the same predecessor:
    one of them was inserted. ``continued`` is the one the chain's next entry links to."""

    a: tuple[Any, ...]
    b: tuple[Any, ...]
    account_id: str
    before: tuple[Any, ...]
    continued: str | None = None


@dataclass
class Result:
    findings: list[Finding]
    tree_size: int
    entries_checked: int
    redacted: int
    root: bytes
    # per (org_id, account_id): the organisation's balance of the account
    accounts: dict[tuple[str, str], AccountState]
    leaves: bytes  # 32 bytes per position, the recomputed leaf hashes (kept as state)
    checkpoint: Checkpoint | None
    monthly: dict[tuple[str, str], int] = field(default_factory=dict)
    legacy_cutover: int | None = None
    # legacy chain gaps explained by other organisations' redacted entries
    gaps_redacted: int = 0
    # one per fault, the entry it is about first (the forged, missing or moved one), its
    # consequences folded in (``also``); ``findings`` keeps every piece of evidence
    faults: list[Finding] = field(default_factory=list)
    # how many processes verified the entries (more than one: runs joined, domain/chunks.py)
    processes: int = 1

    @property
    def ok(self) -> bool:
        return not self.findings

    def account(self, account_id: str, org_id: str | None = None) -> AccountState:
        """The (org, account) state; ``org_id`` may be left out when only one org has it."""
        found = [
            st
            for (org, acct), st in self.accounts.items()
            if acct == account_id and (org_id is None or org == org_id)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} accounts {account_id!r} of org {org_id!r}")
        return found[0]


class Verifier:
    def __init__(
        self,
        keys: dict[str, Ed25519PublicKey],
        saved: Iterable[Checkpoint] = (),
        previous_leaves: bytes = b"",
        previous_cutover: int | None = None,
    ) -> None:
        self.keys = keys
        self.previous_cutover = previous_cutover
        self.saved = sorted(saved, key=lambda c: c.tree_size)
        self.previous = previous_leaves
        self.findings: list[Finding] = []
        self.header: dict[str, Any] | None = None
        self.checkpoint: Checkpoint | None = None
        self.leaves: list[bytes] = []
        self.entry_ids = array("q")  # per position; -1 where the entry is not visible
        self.claimed_differs: dict[int, bytes] = {}
        self.accounts: dict[tuple[str, str], AccountState] = {}
        # legacy chains (entries up to the cutover), per bare account_id
        self.legacy: dict[str, AccountState] = {}
        # no cutover in the header (an export of a version before migration 0011): every
        # entry was written under the legacy rule
        self.cutover: float = float("inf")
        self.gaps_redacted = 0
        self.causes: set[str] = set()
        self.refs: set[tuple[str, str]] = set()
        self.roots: dict[int, bytes] = {}
        self.want_roots: set[int] = set()
        self.entries = 0
        self.redacted = 0
        self.monthly: dict[tuple[str, str], int] = {}
        # positions the export lacks (a deleted line) or the ledger lacks (entry_missing)
        self.missing = 0
        self.gaps: list[tuple[int, int]] = []  # (finding index, self.missing after it)
        self.first_unknown: int | None = None  # first position whose leaf is not known
        self.inserted: set[int] = set()  # positions of entries named as inserted
        self.forks: list[Fork] = []
        self.alias: dict[int, int] = {}  # a position whose findings belong to another's fault
        self.notes: dict[int, list[str]] = {}  # finding index -> what was learnt later
        self.shift = 0  # lines read one position on after a repeated position
        self.repeats: list[int] = []  # positions where a line repeated an earlier position
        # no line may claim a position at or past this (the export's end, within the signed
        # checkpoint); a gap up to it is filled, one past it is an edited line, not a gap
        self.bound: int | None = None
        # the state was put together from runs verified apart (domain/chunks.py): no more lines
        self.joined = False
        # complete subtrees those runs hashed: per level, (index of the first node, the nodes)
        self.subtrees: dict[int, list[tuple[int, bytes]]] = {}

    def _add(self, code: str, message: str, **where: Any) -> None:
        self.findings.append(Finding(code, message, **where))

    def feed_header(self, header: dict[str, Any]) -> None:
        if header.get("format") != EXPORT_FORMAT:
            self._add("bad_export", f"not a {EXPORT_FORMAT} export: {header.get('format')!r}")
        if header.get("start", 0) != 0:
            self._add("partial_export", "the tree can only be checked from position 0")
        self.header = header
        cutover = header.get("legacy_cutover")
        if cutover is not None:
            if type(cutover) is not int or cutover < 0:
                self._add("bad_export", f"legacy_cutover {cutover!r} is not an entry id")
            else:
                self.cutover = cutover
        if header.get("checkpoint"):
            self.checkpoint = Checkpoint.from_json(header["checkpoint"])
            self.want_roots.add(self.checkpoint.tree_size)
        self.want_roots.update(c.tree_size for c in self.saved)
        ends = [header.get("end")]
        if self.checkpoint is not None:
            ends.append(self.checkpoint.tree_size)
        known = [e for e in ends if type(e) is int and e >= 0]
        self.bound = min(known) if known else None

    def feed(self, rec: dict[str, Any]) -> None:
        """One export line after the header: an entry, a redacted leaf or a missing entry."""
        self.feed_many((rec,))

    def _not_joined(self) -> None:
        if self.joined:
            raise RuntimeError("no line can be fed after runs verified apart were joined")

    def feed_lines(self, lines: Iterable[bytes]) -> None:
        """Export lines after the header, as the raw bytes of the file, in order; blank lines
        are skipped. Raises ``orjson.JSONDecodeError`` at a line that is not JSON (the lines
        before it were fed)."""
        self._feed_fast(lines)

    def _feed_fast(self, items: Iterable[Any]) -> None:
        """The fast path of a million-entry run, over raw lines or lines already decoded
        into ``_EntryLine``: an entry line of the expected shape that is in its place and
        follows its chain, whose hashes and leaf hold and which breaks no ledger rule, is
        checked here with no dict and no finding to make; it updates the state exactly as
        ``feed_many`` would. Every other line (redacted, missing, malformed, out of place, or
        any entry a check would flag) is decoded by orjson (or turned back into the dict
        orjson gives for it) and goes through ``feed_many``, which names what is wrong.
        """
        self._not_joined()
        leaves, entry_ids, accounts = self.leaves, self.entry_ids, self.accounts
        causes, refs, monthly = self.causes, self.refs, self.monthly
        legacy, cutover = self.legacy, self.cutover
        decode, encode, sha, content_of = _decode_line, _encode, _sha256, _content_of
        leaf_hasher = _LEAF_HASHER.copy
        Content, ValidationError = _HashedContent, msgspec.ValidationError
        DecodeError = msgspec.DecodeError
        entries = 0
        try:
            for item in items:
                rec: Any
                if type(item) is bytes:
                    line: bytes | None = item
                    try:
                        rec = decode(item)
                    except (ValidationError, DecodeError):
                        if item.strip():
                            self.feed_many((_loads(item),))
                        continue
                else:
                    rec, line = item, None
                e = rec.entry
                h = leaf_hasher()
                h.update(encode(e))
                leaf = h.digest()
                acct, seq, amount, after = e.account_id, e.account_seq, e.amount, e.balance_after
                kind, eid, entry_hash = e.kind, e.entry_id, e.entry_hash
                if (
                    self.shift
                    or rec.position != len(leaves)
                    or leaf.hex() != rec.leaf_hash
                    or amount == 0
                    or after < 0
                    or sha(encode(Content(*content_of(e)))).hexdigest() != entry_hash
                ):
                    self.feed_many((_loads(line) if line is not None else _as_dict(rec),))
                    continue
                org = e.org_id
                st = accounts.get((org, acct))
                if st is None:
                    st = accounts[(org, acct)] = AccountState()
                is_legacy = eid <= cutover
                if is_legacy:
                    chain = legacy.get(acct)
                    if chain is None:
                        chain = legacy[acct] = AccountState()
                else:
                    chain = st
                hist = chain.hist
                if not hist:
                    hist.append(
                        (chain.seq, chain.hash, chain.balance, chain.last_entry, None, None, 0, "")
                    )
                sign = SIGNS.get(kind)
                ref = need = None
                key: tuple[str, str] | None = None
                if sign is not None:
                    ref = e.completion_id if sign_ref_completion(kind) else e.redemption_id
                    key = (ref, kind)
                    need = NEEDS.get(kind)
                if (
                    chain.fork is not None
                    or seq != chain.seq + 1
                    or e.prev_hash != chain.hash
                    or after != chain.balance + amount
                    or e.cause_event_id in causes
                    or (
                        sign is not None
                        and (
                            amount * sign <= 0
                            or ref is None
                            or key in refs
                            or (need is not None and (ref, need) not in refs)
                        )
                    )
                ):
                    self.feed_many((_loads(line) if line is not None else _as_dict(rec),))
                    continue
                # what feed_many does with such an entry, in its order
                entries += 1
                leaves.append(leaf)
                entry_ids.append(eid)
                chain.balance = after
                if is_legacy:
                    st.balance += amount
                if st.balance < 0:
                    st.min_balance = min(st.min_balance, after, st.balance)
                if kind == "credit" or kind == "reversal":
                    st.earned += amount
                elif kind == "debit" or kind == "refund":
                    st.spent -= amount
                mk = (e.occurred_at[:7], kind)
                monthly[mk] = monthly.get(mk, 0) + amount
                chain.seq = seq
                chain.hash = entry_hash
                chain.last_entry = eid
                chain.redacted_mark = self.redacted
                chain.missing_mark = self.missing
                hist.append((seq, entry_hash, after, eid, rec.position, e.prev_hash, amount, kind))
                if len(hist) > 32:
                    del hist[:16]
                if is_legacy:
                    st.seq = seq
                    st.hash = entry_hash
                    st.last_entry = eid
                st.entries += 1
                causes.add(e.cause_event_id)
                if key is not None:
                    refs.add(key)
        finally:
            self.entries += entries

    def feed_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Export lines after the header, in order. The hot path of a million-entry run: one
        flat loop over locals on purpose (no per-entry method calls or attribute lookups)."""
        self._not_joined()
        leaves, entry_ids, accounts = self.leaves, self.entry_ids, self.accounts
        causes, refs, monthly, add = self.causes, self.refs, self.monthly, self._add
        legacy, cutover = self.legacy, self.cutover
        entries = redacted = 0
        shift = self.shift
        try:
            for rec in records:
                position = rec.get("position")
                if shift and type(position) is int:
                    position += shift
                expected = len(leaves)
                if position != expected:
                    if type(position) is not int or position < expected:
                        ent = rec.get("entry")
                        add(
                            "position_out_of_order",
                            f"a line says position {rec.get('position')!r} where position "
                            f"{expected} is due: the export was edited (a line repeated, moved "
                            "or inserted); the lines after it are read one position on",
                            position=expected,
                            entry_id=ent.get("entry_id") if isinstance(ent, dict) else None,
                        )
                        if type(position) is int:
                            shift += expected - position
                            self.repeats.append(expected)
                        position = expected
                    elif self._beyond(position, expected):
                        # not a gap to fill (2^63 positions would never end): an edited line
                        ent = rec.get("entry")
                        add(
                            "position_out_of_order",
                            f"a line says position {position} where position {expected} is "
                            f"due, past the end of the export ({self.bound}): the line was "
                            f"edited; it is read as position {expected}",
                            position=expected,
                            entry_id=ent.get("entry_id") if isinstance(ent, dict) else None,
                        )
                        position = expected
                if position != expected:
                    # re-synchronise: the positions in between are missing, the rest is checked
                    ent = rec.get("entry")
                    self._export_gap(
                        expected,
                        position,
                        ent.get("entry_id") if isinstance(ent, dict) else rec.get("entry_id"),
                    )
                claimed_hex = rec.get("leaf_hash") or ""
                entry = rec.get("entry")
                if entry is None:
                    eid_missing = rec.get("entry_id")
                    if rec.get("missing"):
                        add(
                            "entry_missing",
                            "the tree holds this position but the ledger no longer has the "
                            "entry (deleted)",
                            position=position,
                            entry_id=eid_missing,
                        )
                        self.missing += 1
                        self.gaps.append((len(self.findings) - 1, self.missing))
                    else:
                        redacted += 1
                    leaves.append(bytes.fromhex(claimed_hex))
                    entry_ids.append(eid_missing if type(eid_missing) is int else -1)
                    continue
                entries += 1
                pos = position
                eid = entry.get("entry_id")
                try:
                    if entry.keys() == LEAF_KEYS:
                        leaf_data = _dumps(entry, option=_SORT)
                        content = entry.copy()
                        for k in _LEAF_ONLY:
                            del content[k]
                    else:
                        leaf_data = _dumps({f: entry[f] for f in LEAF_FIELDS}, option=_SORT)
                        content = {f: entry[f] for f in CANONICAL_FIELDS}
                    own = _sha256(_dumps(content, option=_SORT)).hexdigest()
                    acct = entry["account_id"]
                    seq = entry["account_seq"]
                    amount = entry["amount"]
                    after = entry["balance_after"]
                    kind = entry["kind"]
                    entry_hash = entry["entry_hash"]
                    occurred = entry["occurred_at"]
                    if type(occurred) is not str:  # the monthly totals slice it as text
                        raise TypeError(f"occurred_at {occurred!r} is not text")
                except (KeyError, TypeError) as exc:
                    add("malformed_entry", f"cannot encode: {exc}", position=pos, entry_id=eid)
                    leaves.append(bytes.fromhex(claimed_hex) if claimed_hex else bytes(32))
                    entry_ids.append(-1)
                    continue
                leaf = _sha256(b"\x00" + leaf_data).digest()
                leaves.append(leaf)
                entry_ids.append(eid if type(eid) is int else -1)
                if claimed_hex and leaf.hex() != claimed_hex:
                    self.claimed_differs[pos] = bytes.fromhex(claimed_hex)
                    add(
                        "leaf_mismatch",
                        "content differs from what the operator's tree committed to "
                        f"(tree leaf {claimed_hex[:16]}…, content gives {leaf.hex()[:16]}…)",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                if own != entry_hash:
                    add(
                        "entry_hash_mismatch",
                        f"entry_hash {str(entry_hash)[:16]}… is not the hash of its content "
                        f"({own[:16]}…): the entry was altered",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                # the account is (org_id, account_id); entries up to the cutover were chained
                # per bare account_id (the legacy rule), and seed their org's account
                org = entry.get("org_id")
                st = accounts.get((org, acct))
                if st is None:
                    st = accounts[(org, acct)] = AccountState()
                is_legacy = type(eid) is int and eid <= cutover
                if is_legacy:
                    chain = legacy.get(acct)
                    if chain is None:
                        chain = legacy[acct] = AccountState()
                else:
                    chain = st
                hist = chain.hist
                if not hist:
                    hist.append(
                        (chain.seq, chain.hash, chain.balance, chain.last_entry, None, None, 0, "")
                    )
                if chain.fork is not None:
                    self._fork_next(chain, entry)
                unseen = self.redacted + redacted - chain.redacted_mark
                gap = seq - chain.seq - 1 if type(seq) is int else 0
                # a legacy chain may pass through entries of other organisations, which a
                # redacted export shows as leaf hashes only: a gap no longer than the number
                # of redacted positions since the chain's last visible entry is explained
                # (its link and running balance cannot be checked across it); never in a
                # full export, which has no redacted positions, nor under the new rule
                explained = is_legacy and 0 < gap <= unseen
                how: str | None = None
                if explained:
                    self.gaps_redacted += 1
                elif 0 < gap <= self.missing - chain.missing_mark:
                    # the entries between are the ones missing from the export or the
                    # ledger, already named: a consequence, not another fault
                    explained = True
                    self._explain_gap(chain, entry, gap)
                elif seq != chain.seq + 1 or entry["prev_hash"] != chain.hash:
                    how = self._relink(entry, pos, chain, own == entry_hash)
                if how is not None or explained:
                    pass
                elif seq != chain.seq + 1:
                    self._seq_finding(entry, pos, chain)
                elif entry["prev_hash"] != chain.hash:
                    add(
                        "chain_broken",
                        f"prev_hash {str(entry['prev_hash'])[:16]}… is not the entry_hash of seq "
                        f"{chain.seq}"
                        + (f" (entry {chain.last_entry})" if chain.last_entry is not None else "")
                        + f" {chain.hash[:16]}…",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                # an inserted entry, or one moved behind its successor, leaves the chain as
                # it was: the entries around it are checked against their real neighbours
                detached = how == "inserted" or how == "moved"
                if type(amount) is not int or type(after) is not int or amount == 0:
                    add(
                        "bad_amount",
                        f"amount {amount!r} / balance {after!r} not non-zero integers",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                else:
                    if not explained and not detached and after != chain.balance + amount:
                        add(
                            "balance_mismatch",
                            f"balance_after {after} but previous balance {chain.balance} + "
                            f"amount {amount} = {chain.balance + amount}",
                            position=pos,
                            entry_id=eid,
                            account_id=acct,
                        )
                    if after < 0 and kind == "debit":
                        add(
                            "below_zero",
                            f"a debit took the balance below zero (overdraft): {after}",
                            position=pos,
                            entry_id=eid,
                            account_id=acct,
                        )
                    elif after < 0:
                        st.frozen_entries += 1  # a freeze: spent points later reversed
                    if not detached:
                        chain.balance = after
                    if is_legacy:
                        # the org's legacy sum: where its (org, account) chain continues
                        st.balance += amount
                    if st.balance < 0 or after < 0:
                        st.min_balance = min(st.min_balance, after, st.balance)
                    if how == "inserted":
                        pass  # a forged entry earns and spends nothing
                    elif kind == "credit" or kind == "reversal":
                        st.earned += amount
                    elif kind == "debit" or kind == "refund":
                        st.spent -= amount
                    if how != "inserted":
                        mk = (occurred[:7], kind)
                        monthly[mk] = monthly.get(mk, 0) + amount
                if not detached:
                    if type(seq) is int and seq > chain.seq:
                        chain.seq = seq
                    chain.hash = entry_hash
                    chain.last_entry = eid
                    chain.redacted_mark = self.redacted + redacted
                    chain.missing_mark = self.missing
                    hist.append(
                        (
                            seq,
                            entry_hash,
                            chain.balance,
                            eid,
                            pos,
                            entry["prev_hash"],
                            amount if type(amount) is int else 0,
                            kind,
                        )
                    )
                    if len(hist) > 32:
                        del hist[:16]
                    if is_legacy:
                        # the org's own last legacy entry: its new chain links to this one
                        if type(seq) is int:
                            st.seq = seq
                        st.hash = entry_hash
                        st.last_entry = eid
                st.entries += how != "inserted"
                # the ledger's rules (DESIGN.md invariants 2 and 5)
                cause = entry["cause_event_id"]
                if cause in causes:
                    add(
                        "duplicate_cause",
                        f"event {cause} caused a second entry",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                causes.add(cause)
                sign = SIGNS.get(kind)
                if sign is None:
                    continue
                if type(amount) is int and amount * sign <= 0:
                    add(
                        "bad_sign",
                        f"a {kind} of {amount}",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                ref = (
                    entry["completion_id"] if sign_ref_completion(kind) else entry["redemption_id"]
                )
                if ref is None:
                    add(
                        "no_reference",
                        f"a {kind} without its completion or redemption",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                    continue
                key = (ref, kind)
                if key in refs:
                    add(
                        "duplicate_reference",
                        f"a second {kind} for {ref}",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                need = NEEDS.get(kind)
                if need is not None and (ref, need) not in refs:
                    hint = ""
                    if self.missing:
                        hint = f" (unless its {need} is an entry missing above)"
                    add(
                        "orphan_" + kind,
                        f"a {kind} for {ref} which has no {need}{hint}",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                refs.add(key)
        finally:
            self.shift = shift
            self.entries += entries
            self.redacted += redacted

    def _beyond(self, position: int, expected: int) -> bool:
        """A position no export line can have: at or past the export's end, or (with no end
        known) further on than any gap an export could have."""
        if self.bound is not None:
            return position >= self.bound
        return position - expected > _MAX_GAP

    def _export_gap(self, start: int, end: int, next_entry: Any) -> None:
        """Lines for positions ``start``..``end - 1`` are not in the export: one finding,
        then verification goes on at ``end``. A leaf the union verified before stands in for
        the missing one (the tree can still be checked); otherwise the roots past it cannot."""
        prev = self.previous
        for i in range(start, end):
            known = prev[32 * i : 32 * i + 32]
            if len(known) == 32:
                self.leaves.append(known)
            else:
                self.leaves.append(b"")
                if self.first_unknown is None:
                    self.first_unknown = i
            self.entry_ids.append(-1)
        n = end - start
        before = self.entry_ids[start - 1] if start and self.entry_ids[start - 1] >= 0 else None
        entry_id = None
        ids = ""
        if before is not None and type(next_entry) is int and next_entry - before - 1 == n:
            # entry ids are mostly in position order: the neighbours say which ones they were
            ids = f" (by its neighbours, entr{'y' if n == 1 else 'ies'} {before + 1}"
            ids += f"..{next_entry - 1})" if n > 1 else ")"
            entry_id = before + 1 if n == 1 else None
        what = f"position {start}" if n == 1 else f"positions {start}..{end - 1}"
        self._add(
            "position_gap",
            f"{what} missing from the export{ids}: a line was deleted; the rest is verified",
            position=start,
            entry_id=entry_id,
        )
        self.missing += n
        self.gaps.append((len(self.findings) - 1, self.missing))

    def _explain_gap(self, chain: AccountState, entry: dict[str, Any], gap: int) -> None:
        """A chain gap over positions already named missing: say on that finding whose entry
        it was (the account, its seq and how much it moved the balance)."""
        index = -1
        for index, upto in self.gaps:  # noqa: B007 - the one found is used
            if upto > chain.missing_mark:
                break
        else:  # pragma: no cover - the caller saw missing positions after the mark
            return
        f = self.findings[index]
        seq = entry["account_seq"]
        seqs = f"seq {seq - 1}" if gap == 1 else f"seq {seq - gap}..{seq - 1}"
        moved = ""
        after, amount = entry.get("balance_after"), entry.get("amount")
        if type(after) is int and type(amount) is int:
            moved = f", which moved the balance by {after - amount - chain.balance}"
        last = f" after entry {chain.last_entry}" if chain.last_entry is not None else ""
        self.notes.setdefault(index, []).append(
            f"it held account {entry['account_id']}'s {seqs}{last}, before entry "
            f"{entry.get('entry_id')}{moved}"
        )
        if f.account_id is None:
            self.findings[index] = replace(f, account_id=entry["account_id"])

    def _relink(
        self, entry: dict[str, Any], pos: int, chain: AccountState, valid: bool
    ) -> str | None:
        """The entry does not follow the chain's last one: does it link to an earlier one?
        Then it was moved (its successor came first), or it and the entries after that
        earlier one claim the same place (one of them was inserted). None: neither."""
        seq, prev = entry["account_seq"], entry["prev_hash"]
        hist = chain.hist
        for j in range(len(hist) - 2, -1, -1):
            if hist[j][1] == prev and hist[j][0] == seq - 1:
                break
        else:
            return None
        branch, before = hist[j + 1 :], hist[j]
        first = branch[0]
        eid, acct = entry.get("entry_id"), entry["account_id"]
        if first[5] == entry["entry_hash"]:
            self._add(
                "entry_moved",
                f"seq {seq} comes after seq {first[0]} (entry {first[3]}, position {first[4]}), "
                "which links to it: the two entries were swapped",
                position=pos,
                entry_id=eid,
                account_id=acct,
            )
            self.alias[first[4]] = pos
            return "moved"
        pred = f"seq {before[0]}" + (f" (entry {before[3]})" if before[3] is not None else "")
        if len(branch) == 1 and valid:
            # one entry against one: which was inserted is known later (the chain's next
            # entry, the signed tree); go on from the common predecessor meanwhile
            amount = entry.get("amount")
            b = (
                seq,
                entry["entry_hash"],
                entry.get("balance_after"),
                eid,
                pos,
                prev,
                amount if type(amount) is int else 0,
                entry.get("kind"),
            )
            fork = Fork(first, b, acct, before)
            self.forks.append(fork)
            chain.fork = fork
            self._restore(chain, before, undo=first)
            return "forked"
        self._add(
            "entry_inserted",
            f"claims seq {seq} after {pred}, but entry {first[3]} at position {first[4]} already "
            f"follows it there"
            + (" (its own hash is valid)" if valid else "")
            + ": this entry was inserted into the chain afterwards",
            position=pos,
            entry_id=eid,
            account_id=acct,
        )
        self.inserted.add(pos)
        return "inserted"

    @staticmethod
    def _restore(chain: AccountState, state: tuple[Any, ...], undo: tuple[Any, ...]) -> None:
        """Put the chain back at ``state``, taking out what entry ``undo`` added."""
        chain.seq, chain.hash, chain.balance, chain.last_entry = state[:4]
        amount, kind = undo[6], undo[7]
        if kind == "credit" or kind == "reversal":
            chain.earned -= amount
        elif kind == "debit" or kind == "refund":
            chain.spent += amount

    @staticmethod
    def _take(chain: AccountState, state: tuple[Any, ...]) -> None:
        """Make entry ``state`` the chain's last one, counting what it earned or spent."""
        chain.seq, chain.hash, chain.balance, chain.last_entry = state[:4]
        amount, kind = state[6], state[7]
        if kind == "credit" or kind == "reversal":
            chain.earned += amount
        elif kind == "debit" or kind == "refund":
            chain.spent -= amount

    def _fork_next(self, chain: AccountState, entry: dict[str, Any]) -> None:
        """The chain's next entry after a fork links to one of the two."""
        fork, chain.fork = chain.fork, None
        assert fork is not None
        prev = entry.get("prev_hash")
        if prev == fork.b[1]:
            fork.continued = "b"
        elif prev == fork.a[1]:
            fork.continued = "a"  # back to the first branch: the second was inserted
            self._restore(chain, fork.before, undo=fork.b)
            self._take(chain, fork.a)

    def _resolve_forks(self, matches_without: Any) -> None:
        for fork in self.forks:
            a, b = fork.a, fork.b
            why = ""
            loser = None
            if fork.continued is not None:
                loser = a if fork.continued == "b" else b
                why = "the chain's next entry links to the other one"
            else:
                for cand in (a, b):
                    if matches_without(cand[4]):
                        loser, why = cand, "without it the export matches the signed checkpoint"
                        break
            if loser is None:
                loser, why = b, "it was placed in the tree later"
            other = b if loser is a else a
            if loser is b and fork.continued is None:
                acct = [st for (o, x), st in self.accounts.items() if st.last_entry == b[3]]
                for st in acct:  # the chain went on from b: put it back on a
                    self._restore(st, fork.before, undo=b)
                    self._take(st, a)
            pred = f"seq {fork.before[0]}" + (
                f" (entry {fork.before[3]})" if fork.before[3] is not None else ""
            )
            self._add(
                "entry_inserted",
                f"claims seq {loser[0]} after {pred}, as entry {other[3]} at position "
                f"{other[4]} does; {why}: this entry was inserted",
                position=loser[4],
                entry_id=loser[3],
                account_id=fork.account_id,
            )
            self.inserted.add(loser[4])

    def _seq_finding(self, e: dict[str, Any], pos: int, st: AccountState) -> None:
        seq = e["account_seq"]
        where = {"position": pos, "entry_id": e["entry_id"], "account_id": e["account_id"]}
        last = f" (entry {st.last_entry})" if st.last_entry is not None else ""
        if type(seq) is int and seq <= st.seq:
            self._add(
                "chain_order",
                f"account_seq {seq} comes after seq {st.seq}{last} in the tree: entries were "
                "reordered or inserted",
                **where,
            )
        else:
            self._add(
                "chain_gap",
                f"account_seq {seq} follows seq {st.seq}{last}: seq {st.seq + 1}..{seq - 1} "
                "missing",
                **where,
            )

    def _levels(self) -> list[list[bytes]]:
        """Every level of the tree, bottom-up; complete subtree (l, i) is levels[l][i]. The
        nodes runs verified apart already hashed (``subtrees``) are taken as they are."""
        levels = [self.leaves]
        level = self.leaves
        sha = _sha256
        while len(level) > 1:
            nxt: list[bytes] = []
            done = 0  # nodes of this level so far
            for first, nodes in sorted(self.subtrees.get(len(levels), ())):
                nxt += [
                    sha(b"\x01" + level[2 * i] + level[2 * i + 1]).digest()
                    for i in range(done, first)
                ]
                nxt += [nodes[j : j + 32] for j in range(0, len(nodes), 32)]
                done = first + len(nodes) // 32
            nxt += [
                sha(b"\x01" + level[i] + level[i + 1]).digest()
                for i in range(2 * done, len(level) - 1, 2)
            ]
            if len(level) % 2:
                nxt.append(level[-1])  # carried up unchanged; never read as a complete subtree
            levels.append(nxt)
            level = nxt
        return levels

    def _root_at(self, levels: list[list[bytes]], size: int) -> bytes:
        nodes = [levels[lv][i] for lv, i in frontier_keys(size)]
        if not nodes:
            return EMPTY_ROOT
        acc = nodes[-1]
        for left in reversed(nodes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def finish(self) -> Result:
        size = len(self.leaves)
        levels = self._levels()
        known = size if self.first_unknown is None else self.first_unknown
        self.roots = {n: self._root_at(levels, n) for n in self.want_roots if n <= known}
        header = self.header or {}
        cp = self.checkpoint
        if self.forks:

            def matches_without(position: int) -> bool:
                if cp is None or cp.tree_size > size - 1 or cp.tree_size > known - 1:
                    return False
                rest = self.leaves[:position] + self.leaves[position + 1 :]
                return root_of(rest[: cp.tree_size]) == cp.root_hash

            self._resolve_forks(matches_without)
        end = header.get("end")
        if isinstance(end, int) and size < end:
            self._add(
                "truncated_export",
                f"the export stops at position {size}, its header says {end}",
                position=size,
            )
        if self.first_unknown is not None and any(n > known for n in self.want_roots):
            index = next(i for i, f in enumerate(self.findings) if f.code == "position_gap")
            self.notes.setdefault(index, []).append(
                f"without it the signed tree cannot be checked past position {known}: fetch "
                "the export again"
            )
        # the export without the entries named inserted: the tree they were slipped into
        without = None
        if self.inserted:
            without = [x for i, x in enumerate(self.leaves) if i not in self.inserted]
        if cp is None:
            self._add("no_checkpoint", "the export carries no signed checkpoint")
        else:
            why = checkpoint_signature_ok(cp, self.keys)
            if why:
                self._add("bad_signature", f"checkpoint of size {cp.tree_size}: {why}")
            self._check_root(cp, "the export's checkpoint", without)
        for saved in self.saved:
            why = checkpoint_signature_ok(saved, self.keys)
            if why:
                self._add("bad_signature", f"saved checkpoint of size {saved.tree_size}: {why}")
                continue
            if saved.tree_size > size:
                self._add(
                    "ledger_shrank",
                    f"you hold a checkpoint of size {saved.tree_size} (issued "
                    f"{saved.issued_at}) but the export has only {size} entries: history was "
                    "cut or rolled back",
                )
                continue
            self._check_root(saved, f"your saved checkpoint issued {saved.issued_at}", without)
        by_size: dict[int, bytes] = {}
        for c in [*self.saved, *([cp] if cp else [])]:
            if c.tree_size in by_size and by_size[c.tree_size] != c.root_hash:
                self._add(
                    "split_view",
                    f"two signed checkpoints of size {c.tree_size} with different roots",
                )
            by_size[c.tree_size] = c.root_hash
        self._compare_previous(without)
        if self.previous_cutover is not None and self.cutover != self.previous_cutover:
            self._add(
                "cutover_changed",
                f"the export's legacy_cutover is {header.get('legacy_cutover')!r}, a "
                f"verification before saw {self.previous_cutover}: the rule each entry is "
                "checked by must never move",
            )
        for p in self.repeats:  # the line before a repeated position was the one inserted
            if p - 1 in self.inserted:
                self.alias[p] = p - 1
        findings, faults = self._faults()
        return Result(
            findings=findings,
            tree_size=size,
            entries_checked=self.entries,
            redacted=self.redacted,
            root=self._root_at(levels, size) if known == size else EMPTY_ROOT,
            accounts=self.accounts,
            leaves=b"".join(self.leaves),
            checkpoint=cp,
            monthly=self.monthly,
            legacy_cutover=None if self.cutover == float("inf") else int(self.cutover),
            gaps_redacted=self.gaps_redacted,
            faults=faults,
        )

    def _faults(self) -> tuple[list[Finding], list[Finding]]:
        """Every finding with what was learnt later, the entry a fault is about first; and
        one finding per fault: an entry's findings (and those of an entry it displaced) are
        one fault, named by the most telling of them."""
        found = [
            replace(f, message=f"{f.message}; {'; '.join(self.notes[i])}") if i in self.notes else f
            for i, f in enumerate(self.findings)
        ]
        keys: list[Any] = [
            ("ledger", i) if f.position is None else self.alias.get(f.position, f.position)
            for i, f in enumerate(found)
        ]
        groups: dict[Any, list[Finding]] = {}
        for k, f in zip(keys, found, strict=True):
            groups.setdefault(k, []).append(f)
        rank: dict[Any, tuple[int, float]] = {}
        faults: list[tuple[tuple[int, float], Finding]] = []
        for k, fs in groups.items():
            head = min(fs, key=lambda f: RANK.get(f.code, _OTHER))
            rank[k] = (
                RANK.get(head.code, _OTHER) // 10,
                1e18 if head.position is None else head.position,
            )
            also = [
                f.code if f.entry_id == head.entry_id else f"{f.code} at entry {f.entry_id}"
                for f in fs
                if f is not head
            ]
            faults.append((rank[k], replace(head, also=tuple(dict.fromkeys(also)))))
        faults.sort(key=lambda rf: rf[0])
        keyed = sorted(range(len(found)), key=lambda i: rank[keys[i]])
        return [found[i] for i in keyed], [f for _, f in faults]

    def _check_root(self, cp: Checkpoint, what: str, without: list[bytes] | None) -> None:
        got = self.roots.get(cp.tree_size)
        if got is None or got == cp.root_hash:
            return
        if without is not None and len(without) >= cp.tree_size:
            if root_of(without[: cp.tree_size]) == cp.root_hash:
                for i, f in enumerate(self.findings):
                    if f.code == "entry_inserted":
                        self.notes.setdefault(i, []).append(
                            f"{what} (size {cp.tree_size}) matches the export without it"
                        )
                return
        detail = ""
        if self.claimed_differs:
            leaves = [self.claimed_differs.get(i, self.leaves[i]) for i in range(cp.tree_size)]
            if root_of(leaves) == cp.root_hash:
                detail = (
                    "; the signed tree matches the operator's leaf hashes, so the entries "
                    "flagged leaf_mismatch were changed after signing"
                )
        self._add(
            "root_mismatch",
            f"{what} (size {cp.tree_size}) has root {cp.root_hash.hex()[:16]}…, the export's "
            f"first {cp.tree_size} entries give {got.hex()[:16]}…{detail}",
        )

    def _compare_previous(self, without: list[bytes] | None) -> None:
        """Entries verified before must be exactly what they were (named one by one)."""
        prev = self.previous
        if not prev:
            return
        n = min(len(prev) // 32, len(self.leaves))
        if prev[: 32 * n] == b"".join(self.leaves[:n]):
            return
        if without is not None and prev[: 32 * n] == b"".join(without[:n]):
            return  # the entries named inserted moved the rest along; nothing else changed
        for i in range(n):
            if self.leaves[i] and prev[32 * i : 32 * i + 32] != self.leaves[i]:
                self._add(
                    "changed_since_verified",
                    "differs from the entry you verified before at this position",
                    position=i,
                    entry_id=self.entry_ids[i] if self.entry_ids[i] >= 0 else None,
                )
