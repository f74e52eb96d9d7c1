"""RFC 6962 / RFC 9162 Merkle tree hashing, incremental growth, proofs and their verifiers.

Leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), the tree of n
leaves splits at the largest power of two below n. Complete, aligned subtrees are addressed
as (level, index): the node at level l, index i covers leaves [i·2^l, (i+1)·2^l); such a node
never changes once it exists, which is why the service can store it and build proofs from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of that complete, aligned subtree; level 0 = leaf hashes
NodeGetter = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH by the RFC's recursive definition (the reference the fast paths are tested against)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH bottom-up: pair neighbours level by level, carrying a lone last node up unchanged
    (equal to the recursive definition, and much faster for a million leaves)."""
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def frontier_keys(size: int) -> list[tuple[int, int]]:
    """The (level, index) of the complete subtrees that make up a tree of ``size`` leaves,
    left (largest) to right (smallest): one per set bit of ``size``."""
    return [(lv, (size >> lv) - 1) for lv in range(size.bit_length() - 1, -1, -1) if size >> lv & 1]


@dataclass
class Frontier:
    """The compact state of a growing tree: the roots of its complete subtrees, left to right.

    ``append`` costs one leaf plus, amortised, one node hash; it returns every complete
    subtree the new leaf finishes, so a store can keep them for proofs.
    """

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        made = [(0, self.size, leaf)]
        h, level, index = leaf, 0, self.size
        while index & 1:  # a right child: its left sibling is the frontier's last node
            h = node_hash(self.nodes.pop(), h)
            level += 1
            index >>= 1
            made.append((level, index, h))
        self.nodes.append(h)
        self.size += 1
        return made

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        made: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            made.extend(self.append(leaf))
        return made

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.nodes))


def subtree_hash(lo: int, hi: int, get: NodeGetter) -> bytes:
    """MTH(D[lo:hi]) for the ranges the RFC's recursions produce (``lo`` aligned to a power
    of two ≥ hi − lo), from stored complete subtrees."""
    n = hi - lo
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        return get(level, lo >> level)
    k = split_point(n)
    return node_hash(subtree_hash(lo, lo + k, get), subtree_hash(lo + k, hi, get))


def inclusion_proof(index: int, size: int, get: NodeGetter) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    return _path(index, 0, size, get)


def _path(m: int, lo: int, hi: int, get: NodeGetter) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = split_point(n)
    if m < lo + k:
        return [*_path(m, lo, lo + k, get), subtree_hash(lo + k, hi, get)]
    return [*_path(m, lo + k, hi, get), subtree_hash(lo, lo + k, get)]


def consistency_proof(first: int, second: int, get: NodeGetter) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 6962 §2.1.2 (empty when first is 0 or equals second)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    return _subproof(first, 0, second, True, get)


def _subproof(m: int, lo: int, hi: int, whole: bool, get: NodeGetter) -> list[bytes]:
    n = hi - lo
    if m - lo == n:
        return [] if whole else [subtree_hash(lo, hi, get)]
    k = split_point(n)
    if m - lo <= k:
        return [*_subproof(m, lo, lo + k, whole, get), subtree_hash(lo + k, hi, get)]
    return [*_subproof(m, lo + k, hi, False, get), subtree_hash(lo, lo + k, get)]


def needed_nodes(proof: Callable[[NodeGetter], object]) -> set[tuple[int, int]]:
    """The (level, index) keys a proof reads, so a store can fetch them all in one query."""
    keys: set[tuple[int, int]] = set()

    def record(level: int, index: int) -> bytes:
        keys.add((level, index))
        return bytes(HASH_SIZE)

    proof(record)
    return keys


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of ``second`` leaves an append-only extension of the
    tree of ``first`` leaves?"""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0
