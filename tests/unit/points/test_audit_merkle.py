"""RFC 6962 Merkle tree, proofs and verifiers: known roots, every size, tampering, proof sizes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from jifen.points.audit.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    frontier_keys,
    inclusion_proof,
    leaf_hash,
    mth,
    needed_nodes,
    root_of,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference roots for its 8 test leaves (independent of this code)
CT_DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]
CT_DATA.append("606162636465666768696a6b6c6d6e6f")
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


class Tree:
    """A tree kept the way the service keeps it: every complete subtree by (level, index)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = Frontier()
        for h in leaves:
            for level, index, node in self.frontier.append(h):
                self.nodes[(level, index)] = node

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def leaves_of(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


def test_roots_match_certificate_transparency_reference() -> None:
    leaves = [leaf_hash(bytes.fromhex(d)) for d in CT_DATA]
    assert mth([]) == root_of([]) == Frontier().root() == EMPTY_ROOT
    for n in range(1, 9):
        t = Tree(leaves[:n])
        assert mth(leaves[:n]).hex() == CT_ROOTS[n - 1]
        assert root_of(leaves[:n]).hex() == CT_ROOTS[n - 1]
        assert t.frontier.root().hex() == CT_ROOTS[n - 1]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    # a two-leaf tree's root is not the leaf hash of the concatenated children
    assert mth([a, b]) != leaf_hash(a + b)


def test_every_proof_verifies_for_every_size_up_to_70() -> None:
    for n in range(1, 71):
        t = Tree(leaves_of(n))
        root = mth(t.leaves)
        for m in range(n):
            path = inclusion_proof(m, n, t.get)
            assert verify_inclusion(m, n, t.leaves[m], path, root), (m, n)
        for m in range(n + 1):
            proof = consistency_proof(m, n, t.get)
            assert verify_consistency(m, n, mth(t.leaves[:m]), root, proof), (m, n)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_inclusion_fails_when_anything_is_tampered(n: int, data: st.DataObject) -> None:
    t = Tree(leaves_of(n, salt=n))
    root = t.frontier.root()
    m = data.draw(st.integers(0, n - 1))
    path = inclusion_proof(m, n, t.get)
    assert verify_inclusion(m, n, t.leaves[m], path, root)
    assert not verify_inclusion(m, n, leaf_hash(b"forged"), path, root)
    assert not verify_inclusion(m, n, t.leaves[m], path, leaf_hash(b"other root"))
    if path:
        k = data.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[k] = bytes(a ^ 1 for a in bad[k][:1]) + bad[k][1:]
        assert not verify_inclusion(m, n, t.leaves[m], bad, root)
        assert not verify_inclusion(m, n, t.leaves[m], path[:-1], root)
        assert not verify_inclusion(m, n, t.leaves[m], [*path, path[0]], root)
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda x: x != m))
        assert not verify_inclusion(other, n, t.leaves[m], path, root)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 300), data=st.data())
def test_consistency_fails_for_rewritten_history(n: int, data: st.DataObject) -> None:
    t = Tree(leaves_of(n))
    m = data.draw(st.integers(1, n - 1))
    old_root = mth(t.leaves[:m])
    proof = consistency_proof(m, n, t.get)
    assert verify_consistency(m, n, old_root, t.frontier.root(), proof)
    # a different history of the first m leaves: the new root cannot be proved consistent
    j = data.draw(st.integers(0, m - 1))
    forged = list(t.leaves)
    forged[j] = leaf_hash(b"rewritten")
    f = Tree(forged)
    assert not verify_consistency(m, n, old_root, f.frontier.root(), consistency_proof(m, n, f.get))
    k = data.draw(st.integers(0, len(proof) - 1))
    bad = list(proof)
    bad[k] = leaf_hash(b"x")
    assert not verify_consistency(m, n, old_root, t.frontier.root(), bad)
    assert not verify_consistency(m, n, old_root, t.frontier.root(), proof[:-1])
    assert not verify_consistency(n, m, t.frontier.root(), old_root, proof)


def test_proof_sizes_grow_with_the_logarithm_of_the_ledger() -> None:
    """Inclusion: at most ⌈log2 N⌉ hashes (×32 bytes). Consistency: RFC 9162's bound,
    ⌈log2 N⌉ + 1 hashes — one more only when the old size is not a power of two."""
    # one big tree serves every smaller size: complete subtrees never change as it grows
    t = Tree(leaves_of(100_000))
    for n in (10, 100, 1_000, 10_000, 100_000):
        bound = math.ceil(math.log2(n))
        sizes = [len(inclusion_proof(m, n, t.get)) * 32 for m in (0, n // 3, n // 2, n - 1)]
        assert max(sizes) <= bound * 32, (n, sizes)
        assert max(sizes) >= (bound - 1) * 32  # and they do use the depth: logarithmic, not less
        cons = [len(consistency_proof(m, n, t.get)) for m in (1, n // 3, n // 2, n - 1)]
        assert max(cons) <= bound + 1, (n, cons)
        assert len(consistency_proof(1 << (bound - 1), n, t.get)) <= bound
    # ten times the entries add about log2(10) ≈ 3.3 hashes, never ten times the bytes
    assert [len(inclusion_proof(0, n, t.get)) for n in (10, 100, 1_000, 10_000, 100_000)] == [
        4,
        7,
        10,
        14,
        17,
    ]


def test_frontier_is_the_stored_complete_subtrees() -> None:
    t = Tree(leaves_of(37))
    assert [t.nodes[k] for k in frontier_keys(37)] == t.frontier.nodes
    assert frontier_keys(37) == [(5, 0), (2, 8), (0, 36)]
    # a proof only reads complete subtrees that exist, and only O(log² N) of them
    keys = needed_nodes(lambda get: consistency_proof(13, 37, get))
    assert keys <= set(t.nodes) and len(keys) < 40
