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
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jifen.points.audit.domain.canonical import LEAF_FIELDS
from jifen.points.audit.domain.checkpoint import Checkpoint, checkpoint_signature_ok
from jifen.points.audit.domain.merkle import EMPTY_ROOT, frontier_keys, node_hash, root_of
from jifen.points.domain.chain import CANONICAL_FIELDS, GENESIS

EXPORT_FORMAT = "jifen.points.audit.export.v1"
SIGNS = {"credit": 1, "reversal": -1, "debit": -1, "refund": 1}
LEAF_KEYS = frozenset(LEAF_FIELDS)
_LEAF_ONLY = tuple(f for f in LEAF_FIELDS if f not in CANONICAL_FIELDS)
_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256


def sign_ref_completion(kind: str) -> bool:
    return kind == "credit" or kind == "reversal"


NEEDS = {"reversal": "credit", "refund": "debit"}


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    message: str
    position: int | None = None
    entry_id: int | None = None
    account_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.entry_id is not None:
            where.append(f"entry {self.entry_id}")
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.account_id is not None:
            where.append(f"account {self.account_id}")
        return f"[{self.code}] {', '.join(where) or 'ledger'}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "position": self.position,
            "entry_id": self.entry_id,
            "account_id": self.account_id,
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

    def feed(self, rec: dict[str, Any]) -> None:
        """One export line after the header: an entry, a redacted leaf or a missing entry."""
        self.feed_many((rec,))

    def feed_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Export lines after the header, in order. The hot path of a million-entry run: one
        flat loop over locals on purpose (no per-entry method calls or attribute lookups)."""
        leaves, entry_ids, accounts = self.leaves, self.entry_ids, self.accounts
        causes, refs, monthly, add = self.causes, self.refs, self.monthly, self._add
        legacy, cutover = self.legacy, self.cutover
        entries = redacted = 0
        try:
            for rec in records:
                position = rec.get("position")
                expected = len(leaves)
                if position != expected:
                    add(
                        "position_gap",
                        f"export jumps from position {expected - 1} to {position}: "
                        f"positions from {expected} are missing",
                        position=expected,
                    )
                    if not isinstance(position, int) or position < expected:
                        continue
                    # keep going so later entries are still checked; the tree will not match
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
                unseen = self.redacted + redacted - chain.redacted_mark
                gap = seq - chain.seq - 1 if type(seq) is int else 0
                # a legacy chain may pass through entries of other organisations, which a
                # redacted export shows as leaf hashes only: a gap no longer than the number
                # of redacted positions since the chain's last visible entry is explained
                # (its link and running balance cannot be checked across it); never in a
                # full export, which has no redacted positions, nor under the new rule
                explained = is_legacy and 0 < gap <= unseen
                if explained:
                    self.gaps_redacted += 1
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
                if type(amount) is not int or type(after) is not int or amount == 0:
                    add(
                        "bad_amount",
                        f"amount {amount!r} / balance {after!r} not non-zero integers",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                else:
                    if not explained and after != chain.balance + amount:
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
                    chain.balance = after
                    if is_legacy:
                        # the org's legacy sum: where its (org, account) chain continues
                        st.balance += amount
                    if st.balance < 0 or after < 0:
                        st.min_balance = min(st.min_balance, after, st.balance)
                    if kind == "credit" or kind == "reversal":
                        st.earned += amount
                    elif kind == "debit" or kind == "refund":
                        st.spent -= amount
                    mk = (entry["occurred_at"][:7], kind)
                    monthly[mk] = monthly.get(mk, 0) + amount
                if type(seq) is int and seq > chain.seq:
                    chain.seq = seq
                chain.hash = entry_hash
                chain.last_entry = eid
                chain.redacted_mark = self.redacted + redacted
                if is_legacy:
                    # the org's own last legacy entry: its new chain links to this one
                    if type(seq) is int:
                        st.seq = seq
                    st.hash = entry_hash
                    st.last_entry = eid
                st.entries += 1
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
                    add(
                        "orphan_" + kind,
                        f"a {kind} for {ref} which has no {need}",
                        position=pos,
                        entry_id=eid,
                        account_id=acct,
                    )
                refs.add(key)
        finally:
            self.entries += entries
            self.redacted += redacted

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
        """Every level of the tree, bottom-up; complete subtree (l, i) is levels[l][i]."""
        levels = [self.leaves]
        level = self.leaves
        sha = _sha256
        while len(level) > 1:
            nxt = [
                sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
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
        self.roots = {n: self._root_at(levels, n) for n in self.want_roots if n <= size}
        header = self.header or {}
        end = header.get("end")
        if isinstance(end, int) and size < end:
            self._add(
                "truncated_export",
                f"the export stops at position {size}, its header says {end}",
                position=size,
            )
        cp = self.checkpoint
        if cp is None:
            self._add("no_checkpoint", "the export carries no signed checkpoint")
        else:
            why = checkpoint_signature_ok(cp, self.keys)
            if why:
                self._add("bad_signature", f"checkpoint of size {cp.tree_size}: {why}")
            self._check_root(cp, "the export's checkpoint")
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
            self._check_root(saved, f"your saved checkpoint issued {saved.issued_at}")
        by_size: dict[int, bytes] = {}
        for c in [*self.saved, *([cp] if cp else [])]:
            if c.tree_size in by_size and by_size[c.tree_size] != c.root_hash:
                self._add(
                    "split_view",
                    f"two signed checkpoints of size {c.tree_size} with different roots",
                )
            by_size[c.tree_size] = c.root_hash
        self._compare_previous()
        if self.previous_cutover is not None and self.cutover != self.previous_cutover:
            self._add(
                "cutover_changed",
                f"the export's legacy_cutover is {header.get('legacy_cutover')!r}, a "
                f"verification before saw {self.previous_cutover}: the rule each entry is "
                "checked by must never move",
            )
        return Result(
            findings=self.findings,
            tree_size=size,
            entries_checked=self.entries,
            redacted=self.redacted,
            root=self._root_at(levels, size),
            accounts=self.accounts,
            leaves=b"".join(self.leaves),
            checkpoint=cp,
            monthly=self.monthly,
            legacy_cutover=None if self.cutover == float("inf") else int(self.cutover),
            gaps_redacted=self.gaps_redacted,
        )

    def _check_root(self, cp: Checkpoint, what: str) -> None:
        got = self.roots.get(cp.tree_size)
        if got is None or got == cp.root_hash:
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

    def _compare_previous(self) -> None:
        """Entries verified before must be exactly what they were (named one by one)."""
        prev = self.previous
        if not prev:
            return
        n = min(len(prev) // 32, len(self.leaves))
        if prev[: 32 * n] == b"".join(self.leaves[:n]):
            return
        for i in range(n):
            if prev[32 * i : 32 * i + 32] != self.leaves[i]:
                self._add(
                    "changed_since_verified",
                    "differs from the entry you verified before at this position",
                    position=i,
                    entry_id=self.entry_ids[i] if self.entry_ids[i] >= 0 else None,
                )
