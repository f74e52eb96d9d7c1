"""The verifier's work split over processes: each worker scans a contiguous run of export
lines (``scan_chunk``) with no knowledge of what came before, and the parent joins the runs in
order (``join_chunks``) into exactly the state the sequential ``Verifier.feed_lines`` would
have reached, then ``Verifier.finish`` runs as usual.

A run is only ever accepted when it is clean: every line an entry of the expected shape in its
place, its hashes and leaf holding, its chain, balance and ledger rules holding inside the run.
What a run cannot know — the state each chain was in before the run's first entry of it, the
causes and references of earlier runs — it hands back as claims (the first entry's seq,
prev_hash and previous balance; 64-bit hashes of its causes and references, and the exact
references it needed and did not find), which the join checks against the runs before it.
Anything else — a finding of any kind, a claim that does not hold, a hash that collides — is
doubt: ``scan_chunk`` returns None or ``join_chunks`` returns False, and the caller runs the
exact sequential path from the start, so what is reported is always what it reports.

The hashes of causes and references are Python's (SipHash, keyed per process; the workers are
forked, so they share the key): a collision only ever sends the run to the sequential path,
except for a reversal or refund whose credit or debit is in an earlier run, which is accepted
when the hash of that credit or debit is among the earlier runs' (a false match needs a 64-bit
collision under a key no export can know).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from jifen.points.audit.domain.verify import (
    _LEAF_HASHER,
    NEEDS,
    SIGNS,
    AccountState,
    Verifier,
    _content_of,
    _decode_line,
    _encode,
    _HashedContent,
    _sha256,
)

_NEVER = 1 << 62  # no legacy entry yet: the lowest running sum
# A chain's run, as a list (cheap to update and to send back): what its first entry claims came
# before it (seq, hash, balance), where the run left it (seq, hash, balance, last entry id) and
# how many entries it has in the run
_PSEQ, _PHASH, _PBAL, _SEQ, _HASH, _BAL, _LAST, _COUNT = range(8)
# An (org, account)'s run: whether it has legacy entries in the run and whether entries under
# the new rule, its entries, what it earned and spent, how its organisation's legacy sum moved
# (relative to before the run) and the lowest that running sum went, and its last legacy entry
# (seq, hash, id), which its new chain follows
_LEGACY, _NEW, _ENTRIES, _EARNED, _SPENT, _MOVED, _LOWEST, _LSEQ, _LHASH, _LEID = range(10)


@dataclass(slots=True)
class ChunkSummary:
    first_position: int
    positions: int
    leaves: bytes
    entry_ids: bytes
    chains: dict[tuple[str, ...], list[Any]]
    accounts: dict[tuple[str, str], list[Any]]
    monthly: dict[tuple[str, str], int]
    causes: bytes  # array("q") of the causes' hashes
    refs: bytes  # array("q") of the references' hashes
    needs: list[tuple[str, str]]
    # per level from 1: (index of the first complete node in the run, the nodes)
    subtrees: list[tuple[int, bytes]]


def scan_chunk(lines: Iterable[bytes], cutover: float) -> ChunkSummary | None:
    """A contiguous run of export lines (raw bytes, blank lines skipped), or None at the first
    line the fast path of ``Verifier.feed_lines`` would not accept as it is."""
    decode, encode, content_of, sha = _decode_line, _encode, _content_of, _sha256
    leaf_hasher = _LEAF_HASHER.copy
    Content = _HashedContent
    errors = (msgspec.ValidationError, msgspec.DecodeError)
    leaves: list[bytes] = []
    entry_ids = array("q")
    chains: dict[tuple[str, ...], list[Any]] = {}
    accounts: dict[tuple[str, str], list[Any]] = {}
    monthly: dict[tuple[str, str], int] = {}
    causes: set[str] = set()
    refs: set[tuple[str, str]] = set()
    needs: list[tuple[str, str]] = []
    first: int | None = None
    for line in lines:
        rec: Any
        try:
            rec = decode(line)
        except errors:
            if line.strip():
                return None
            continue
        e = rec.entry
        h = leaf_hasher()
        h.update(encode(e))
        leaf = h.digest()
        if first is None:
            first = rec.position
        amount, after, seq, kind = e.amount, e.balance_after, e.account_seq, e.kind
        if (
            rec.position != first + len(leaves)
            or leaf.hex() != rec.leaf_hash
            or amount == 0
            or after < 0
            or sha(encode(Content(*content_of(e)))).hexdigest() != e.entry_hash
        ):
            return None
        org, acct, eid = e.org_id, e.account_id, e.entry_id
        is_legacy = eid <= cutover
        sk = (org, acct)
        st = accounts.get(sk)
        if st is None:
            st = accounts[sk] = [False, False, 0, 0, 0, 0, _NEVER, 0, "", 0]
        if is_legacy:
            if st[_NEW]:
                return None  # a legacy entry after new ones: the join would take them in turn
            st[_LEGACY] = True
        else:
            st[_NEW] = True
        ck = ("L", acct) if is_legacy else ("N", org, acct)
        chain = chains.get(ck)
        if chain is None:
            chain = chains[ck] = [seq - 1, e.prev_hash, after - amount, 0, "", 0, 0, 0]
        elif seq != chain[_SEQ] + 1 or e.prev_hash != chain[_HASH] or after != chain[_BAL] + amount:
            return None
        cause = e.cause_event_id
        if cause in causes:
            return None
        sign = SIGNS.get(kind)
        key: tuple[str, str] | None = None
        if sign is not None:
            ref = e.completion_id if kind == "credit" or kind == "reversal" else e.redemption_id
            if amount * sign <= 0 or ref is None:
                return None
            key = (ref, kind)
            if key in refs:
                return None
            need = NEEDS.get(kind)
            if need is not None and (ref, need) not in refs:
                needs.append((ref, need))  # in an earlier run, or an orphan
        leaves.append(leaf)
        entry_ids.append(eid)
        entry_hash = e.entry_hash
        chain[_SEQ], chain[_HASH], chain[_BAL], chain[_LAST] = seq, entry_hash, after, eid
        chain[_COUNT] += 1
        if is_legacy:
            moved = st[_MOVED] = st[_MOVED] + amount
            if moved < st[_LOWEST]:
                st[_LOWEST] = moved
            st[_LSEQ], st[_LHASH], st[_LEID] = seq, entry_hash, eid
        if kind == "credit" or kind == "reversal":
            st[_EARNED] += amount
        elif kind == "debit" or kind == "refund":
            st[_SPENT] -= amount
        st[_ENTRIES] += 1
        mk = (e.occurred_at[:7], kind)
        monthly[mk] = monthly.get(mk, 0) + amount
        causes.add(cause)
        if key is not None:
            refs.add(key)
    start = 0 if first is None else first
    return ChunkSummary(
        first_position=start,
        positions=len(leaves),
        leaves=b"".join(leaves),
        entry_ids=entry_ids.tobytes(),
        chains=chains,
        accounts=accounts,
        monthly=monthly,
        causes=array("q", map(hash, causes)).tobytes(),
        refs=array("q", map(hash, refs)).tobytes(),
        needs=needs,
        subtrees=_subtrees(start, leaves),
    )


def _subtrees(first: int, leaves: list[bytes]) -> list[tuple[int, bytes]]:
    """The complete subtrees of the tree over leaves ``first``.. that lie wholly in this run:
    for each level from 1, the index of its first node here and the nodes (RFC 6962 hashing,
    as ``Verifier._levels``); such a node is the same whatever the tree's size."""
    out: list[tuple[int, bytes]] = []
    sha = _sha256
    level, at = leaves, first
    while True:
        up = (at + 1) // 2  # the first node whose two children are both here
        end = (at + len(level)) // 2
        if end <= up:
            return out
        skip = 2 * up - at
        level = [
            sha(b"\x01" + level[j] + level[j + 1]).digest()
            for j in range(skip, skip + 2 * (end - up), 2)
        ]
        out.append((up, b"".join(level)))
        at = up


def _follows(run: list[Any], chain: AccountState) -> bool:
    """The run's first entry of the chain follows the chain's last one: then the chain is
    where the run left it."""
    if run[_PSEQ] != chain.seq or run[_PHASH] != chain.hash or run[_PBAL] != chain.balance:
        return False
    chain.seq, chain.hash = run[_SEQ], run[_HASH]
    chain.balance, chain.last_entry = run[_BAL], run[_LAST]
    return True


def join_chunks(v: Verifier, chunks: list[ChunkSummary]) -> bool:
    """Put the runs, in order, into ``v`` (header fed, nothing else): True when every run
    follows the one before, leaving the state ``feed_lines`` over the same lines would have
    left; False at any doubt (``v`` is then spoilt: verify again with a new one, sequentially).

    A chain's ``hist`` (its last states, which let ``feed_many`` tell a moved or inserted entry
    from a broken link while lines are fed) is not rebuilt: no line is fed after a join."""
    if v.findings or v.leaves or v.shift:
        return False
    accounts, legacy, monthly = v.accounts, v.legacy, v.monthly
    causes: set[int] = set()
    refs: set[int] = set()
    for n, c in enumerate(chunks, start=1):
        if c.positions and c.first_position != len(v.leaves):
            return False
        ch, rf = array("q"), array("q")
        ch.frombytes(c.causes)
        rf.frombytes(c.refs)
        if not causes.isdisjoint(ch) or not refs.isdisjoint(rf):
            return False  # a cause or reference of an earlier run again (or a collision)
        if any(hash(need) not in refs for need in c.needs):
            return False  # a reversal or refund with no credit or debit before it
        if n < len(chunks):  # (a collision inside one run is harmless: its strings differ)
            causes.update(ch)
            refs.update(rf)
        # the (org, account)s first, in the order the run met them (feed_lines makes them so)
        before: dict[tuple[str, str], int] = {}
        for sk in c.accounts:
            st = accounts.get(sk)
            if st is None:
                st = accounts[sk] = AccountState()
            before[sk] = st.balance
        # the legacy chains, then each (org, account)'s legacy sum and last legacy entry (from
        # which its new chain goes on, in this run or a later one), then the new chains
        chains = c.chains
        for ck, run in chains.items():
            if ck[0] == "L":
                chain = legacy.get(ck[1])
                if chain is None:
                    chain = legacy[ck[1]] = AccountState()
                if not _follows(run, chain):
                    return False
        for sk, a in c.accounts.items():
            if a[_LEGACY]:
                st = accounts[sk]
                st.balance = before[sk] + a[_MOVED]
                st.min_balance = min(st.min_balance, before[sk] + a[_LOWEST])
                st.seq, st.hash, st.last_entry = a[_LSEQ], a[_LHASH], a[_LEID]
        for ck, run in chains.items():
            if ck[0] == "N" and not _follows(run, accounts[(ck[1], ck[2])]):
                return False
        for sk, a in c.accounts.items():
            st = accounts[sk]
            st.earned += a[_EARNED]
            st.spent += a[_SPENT]
            st.entries += a[_ENTRIES]
        for mk, amount in c.monthly.items():
            monthly[mk] = monthly.get(mk, 0) + amount
        leaves = c.leaves
        v.leaves.extend([leaves[i : i + 32] for i in range(0, len(leaves), 32)])
        v.entry_ids.frombytes(c.entry_ids)
        v.entries += c.positions
        for level, piece in enumerate(c.subtrees, start=1):
            v.subtrees.setdefault(level, []).append(piece)
    v.joined = True
    return True
