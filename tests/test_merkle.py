"""RFC 9162 Merkle tree maths: published vectors, then properties against a naive reference."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from vault.ledger.entry import entry_hash
from vault.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodes,
    MissingNodesError,
    append_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    nodes_completed_by_append,
    parent,
    root,
    subtree_coords,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
H = bytes.fromhex
LEAVES = [leaf_hash(H(x)) for x in VECTORS["leaves_hex"]]
ROOTS = {int(k): H(v) for k, v in VECTORS["roots"].items()}
ROOTS[0] = H(VECTORS["empty_root"])


class CountingNodes:
    """Wraps a source and records every batch it is asked for."""

    def __init__(self, inner: MemoryNodes) -> None:
        self.inner = inner
        self.calls: list[list[tuple[int, int]]] = []

    def nodes(self, coords: Sequence[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        self.calls.append(list(coords))
        return self.inner.nodes(coords)


# --- an independent, naive reference: the RFC's recursive definitions over all leaves ---


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def random_leaves(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)]


def flip(b: bytes, bit: int = 0) -> bytes:
    return bytes([b[0] ^ (1 << bit)]) + b[1:]


# --- published vectors -------------------------------------------------------------


def test_hasher_vectors():
    hv = VECTORS["hasher"]
    assert leaf_hash(b"") == H(hv["empty_leaf"]["leaf_hash"])
    assert leaf_hash(H(hv["leaf"]["entry_hex"])) == H(hv["leaf"]["leaf_hash"])
    node = hv["node"]
    assert parent(H(node["left_hex"]), H(node["right_hex"])) == H(node["hash"])
    assert H(VECTORS["empty_root"]) == EMPTY_ROOT


def test_leaf_hash_agrees_with_entry_hash():
    for x in VECTORS["leaves_hex"]:
        assert leaf_hash(H(x)).hex() == entry_hash(H(x))


@pytest.mark.parametrize("size", range(0, 9))
def test_reference_roots(size):
    tree = MemoryNodes(LEAVES[:size])
    assert root(tree, size) == ROOTS[size]
    # and every smaller tree head from the full tree's store
    assert root(MemoryNodes(LEAVES), size) == ROOTS[size]
    cr = CompactRange()
    for leaf in LEAVES[:size]:
        cr.append(leaf)
    assert cr.root() == ROOTS[size]


def test_reference_node_hashes_are_exactly_what_is_stored():
    want = {
        (level, index): H(h)
        for level, row in enumerate(VECTORS["node_hashes"])
        for index, h in enumerate(row)
    }
    assert MemoryNodes(LEAVES).stored() == want


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}/{c['size']}"
)
def test_reference_inclusion_proofs(case):
    index, size, want = case["index"], case["size"], [H(h) for h in case["proof"]]
    assert inclusion_proof(MemoryNodes(LEAVES), index, size) == want
    assert verify_inclusion(LEAVES[index], index, size, want, ROOTS[size])


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['old']}/{c['new']}"
)
def test_reference_consistency_proofs(case):
    old, new, want = case["old"], case["new"], [H(h) for h in case["proof"]]
    assert consistency_proof(MemoryNodes(LEAVES), old, new) == want
    assert verify_consistency(old, new, ROOTS[old], ROOTS[new], want)


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_node_ids"], ids=lambda c: f"{c['index']}/{c['size']}"
)
def test_inclusion_reads_the_published_node_ids(case):
    src = CountingNodes(MemoryNodes(random_leaves(128)))
    inclusion_proof(src, case["index"], case["size"])
    fetched = {c for call in src.calls for c in call}
    assert fetched == {tuple(i) for i in case["ids"]}
    assert len(src.calls) <= 1


@pytest.mark.parametrize(
    "case", VECTORS["consistency_node_ids"], ids=lambda c: f"{c['old']}/{c['new']}"
)
def test_consistency_reads_the_published_node_ids(case):
    src = CountingNodes(MemoryNodes(random_leaves(128)))
    consistency_proof(src, case["old"], case["new"])
    fetched = {c for call in src.calls for c in call}
    assert fetched == {tuple(i) for i in case["ids"]}
    assert len(src.calls) <= 1


def tamper_inclusion(leaf, index, size, proof, rt):
    """Variations after transparency-dev/merkle's corruptInclusionProof: none may verify."""
    some = H("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield leaf, index - 1, size, proof, rt
    yield leaf, index + 1, size, proof, rt
    yield leaf, index ^ 2, size, proof, rt
    yield leaf, index, size * 2, proof, rt
    yield leaf, index, size // 2, proof, rt
    yield flip(leaf), index, size, proof, rt
    yield leaf, index, size, proof, EMPTY_ROOT
    yield leaf, index, size, proof, some
    yield leaf, index, size, proof, flip(rt, 7)
    yield leaf, index, size, [*proof, b""], rt
    yield leaf, index, size, [*proof, rt], rt
    yield leaf, index, size, [b"", *proof], rt
    yield leaf, index, size, [rt, *proof], rt
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 3)
        yield leaf, index, size, bad, rt
    if proof:
        yield leaf, index, size, proof[:-1], rt
    if len(proof) > 1:
        yield leaf, index, size, [proof[0], some, *proof[1:]], rt
        yield leaf, index, size, [proof[1], proof[0], *proof[2:]], rt


def tamper_consistency(old, new, r1, r2, proof):
    """After transparency-dev/merkle's corruptConsistencyProof."""
    yield old - 1, new, r1, r2, proof
    yield old + 1, new, r1, r2, proof
    yield old ^ 2, new, r1, r2, proof
    yield old, new * 2, r1, r2, proof
    yield old, new // 2, r1, r2, proof
    yield old, new, flip(r1), r2, proof
    yield old, new, r1, flip(r2), proof
    yield old, new, r2, r1, proof
    yield old, new, r1, r2, []
    yield old, new, r1, r2, [*proof, b""]
    yield old, new, r1, r2, [*proof, r1]
    yield old, new, r1, r2, [*proof, r2]
    yield old, new, r1, r2, [b"", *proof]
    yield old, new, r1, r2, [r1, *proof]
    yield old, new, r1, r2, [r2, *proof]
    yield old, new, r1, r2, [proof[0], *proof]
    yield old, new, r1, r2, proof[:-1]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], 4)
        yield old, new, r1, r2, bad


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}/{c['size']}"
)
def test_reference_inclusion_tampered(case):
    index, size, proof = case["index"], case["size"], [H(h) for h in case["proof"]]
    for args in tamper_inclusion(LEAVES[index], index, size, proof, ROOTS[size]):
        assert not verify_inclusion(*args), args[1:3]


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['old']}/{c['new']}"
)
def test_reference_consistency_tampered(case):
    old, new, proof = case["old"], case["new"], [H(h) for h in case["proof"]]
    if not proof:
        return
    for args in tamper_consistency(old, new, ROOTS[old], ROOTS[new], proof):
        assert not verify_consistency(*args), args[:2]


def test_single_leaf_and_edge_cases():
    h = leaf_hash(b"data")
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    some = H("abacaba000000000000000000000000000000000000000000060061e00123456")
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        assert not verify_inclusion(some, index, size, [], b"")
        assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
        assert not verify_inclusion(some, index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(h, -1, 1, [], h)
    # consistency edge cases: strict about what the empty tree's root is
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    assert not verify_consistency(0, 5, ROOTS[1], ROOTS[5], [])
    assert not verify_consistency(0, 1, EMPTY_ROOT, ROOTS[1], [EMPTY_ROOT])
    assert verify_consistency(3, 3, ROOTS[3], ROOTS[3], [])
    assert not verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])
    assert not verify_consistency(3, 3, ROOTS[3], ROOTS[3], [EMPTY_ROOT])
    assert not verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])
    assert not verify_consistency(1, 2, ROOTS[1], ROOTS[2], [])


def test_argument_errors():
    tree = MemoryNodes(LEAVES)
    with pytest.raises(ValueError):
        inclusion_proof(tree, 8, 8)
    with pytest.raises(ValueError):
        inclusion_proof(tree, 0, 0)
    with pytest.raises(ValueError):
        consistency_proof(tree, 6, 3)
    with pytest.raises(ValueError):
        root(tree, -1)
    with pytest.raises(ValueError):
        subtree_coords(1, 4)  # not a subtree of any RFC tree: its fold is not its MTH
    with pytest.raises(ValueError):
        subtree_coords(3, 3)
    with pytest.raises(MissingNodesError):
        root(tree, 9)  # the store only knows 8 leaves
    with pytest.raises(ValueError):
        CompactRange().append(b"short")
    assert consistency_proof(tree, 0, 8) == []


# --- properties --------------------------------------------------------------------

SIZES = sorted(
    {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257}
    | set(random.Random(7).sample(range(1, 301), 12))
)
BIG = random_leaves(300, seed=1)
BIG_TREE = MemoryNodes(BIG)


@pytest.mark.parametrize("n", SIZES)
def test_roots_match_naive_mth(n):
    want = ref_mth(BIG[:n])
    assert root(BIG_TREE, n) == want
    assert root(MemoryNodes(BIG[:n]), n) == want


def test_every_root_streams_and_stores_the_same():
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT and cr.size == 0
    for i, leaf in enumerate(BIG):
        cr.append(leaf)
        assert cr.size == i + 1
        assert cr.root() == root(BIG_TREE, i + 1)
        if i % 37 == 0:
            resumed = CompactRange.from_source(BIG_TREE, i + 1)
            assert resumed.root() == cr.root()


@pytest.mark.parametrize("n", SIZES)
def test_every_inclusion_proof_verifies(n):
    rt = root(BIG_TREE, n)
    for index in range(n):
        proof = inclusion_proof(BIG_TREE, index, n)
        assert proof == ref_path(index, BIG[:n])
        assert verify_inclusion(BIG[index], index, n, proof, rt)
    rng = random.Random(n)
    for index in rng.sample(range(n), min(n, 6)):
        proof = inclusion_proof(BIG_TREE, index, n)
        for args in tamper_inclusion(BIG[index], index, n, proof, rt):
            assert not verify_inclusion(*args), (index, n, args[1:3])


@pytest.mark.parametrize("n", SIZES)
def test_every_consistency_proof_verifies(n):
    rn = root(BIG_TREE, n)
    for old in range(0, n + 1):
        proof = consistency_proof(BIG_TREE, old, n)
        if 0 < old < n:
            assert proof == ref_subproof(old, BIG[:n], True)
        ro = root(BIG_TREE, old)
        assert verify_consistency(old, n, ro, rn, proof)
    rng = random.Random(n)
    for old in rng.sample(range(1, n), min(n - 1, 6)) if n > 1 else []:
        proof = consistency_proof(BIG_TREE, old, n)
        ro = root(BIG_TREE, old)
        for args in tamper_consistency(old, n, ro, rn, proof):
            assert not verify_consistency(*args), (old, n, args[:2])


def test_all_pairs_small():
    for new in range(0, 70):
        rn = root(BIG_TREE, new)
        for old in range(0, new + 1):
            proof = consistency_proof(BIG_TREE, old, new)
            assert verify_consistency(old, new, root(BIG_TREE, old), rn, proof)
            if proof:
                other = root(BIG_TREE, old - 1) if old > 1 else flip(rn)
                assert not verify_consistency(old, new, other, rn, proof)


def test_proofs_from_a_bigger_store_equal_proofs_from_an_exact_store():
    for n in (5, 13, 64, 100):
        exact = MemoryNodes(BIG[:n])
        for index in range(0, n, 3):
            assert inclusion_proof(exact, index, n) == inclusion_proof(BIG_TREE, index, n)
        for old in range(1, n):
            assert consistency_proof(exact, old, n) == consistency_proof(BIG_TREE, old, n)


def test_nodes_completed_by_append_is_exactly_the_complete_subtrees():
    seen: set[tuple[int, int]] = set()
    for index in range(300):
        made = nodes_completed_by_append(index)
        assert [lvl for lvl, _ in made] == list(range(1, len(made) + 1))
        seen.add((0, index))
        seen.update(made)
        size = index + 1
        complete = {(lvl, i) for lvl in range(0, size.bit_length()) for i in range(size >> lvl)}
        assert seen == complete, size
    assert seen == set(BIG_TREE.stored())


def test_nodes_completed_by_append_children_are_available():
    # each new node's children are the leaf / node just made, or an older stored node
    tree = MemoryNodes()
    for index, leaf in enumerate(BIG[:200]):
        before = set(tree.stored())
        tree.append(leaf)
        made = [(0, index), *nodes_completed_by_append(index)]
        for lvl, i in made[1:]:
            assert (lvl - 1, 2 * i) in before
            assert (lvl - 1, 2 * i + 1) in made
            stored = tree.stored()
            assert stored[(lvl, i)] == parent(
                stored[(lvl - 1, 2 * i)], stored[(lvl - 1, 2 * i + 1)]
            )


def test_append_nodes_for_a_batch_needs_one_read():
    for size, count in [(0, 1), (0, 17), (5, 3), (7, 1), (7, 9), (100, 28), (127, 129)]:
        stored = MemoryNodes(BIG[:size])
        src = CountingNodes(stored)
        made = append_nodes(src, size, BIG[size : size + count])
        assert len(src.calls) == (1 if size else 0)
        want = {
            c: h
            for c, h in MemoryNodes(BIG[: size + count]).stored().items()
            if c[0] >= 1 and c not in stored.stored()
        }
        assert made == want
        expected_coords = [
            c for i in range(size, size + count) for c in nodes_completed_by_append(i)
        ]
        assert sorted(made) == sorted(expected_coords)


def test_subtree_coords_compact_range():
    assert subtree_coords(0, 1) == [(0, 0)]
    assert subtree_coords(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert subtree_coords(0, 8) == [(3, 0)]
    assert subtree_coords(4, 7) == [(1, 2), (0, 6)]
    assert subtree_coords(64, 95) == [(4, 4), (3, 10), (2, 22), (1, 46), (0, 94)]
    for n in range(1, 300):
        coords = subtree_coords(0, n)
        assert len(coords) == bin(n).count("1")
        assert sum(1 << lvl for lvl, _ in coords) == n


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 100, 257, 300])
def test_one_batch_and_logarithmic_reads(n):
    bound = 2 * max(1, math.ceil(math.log2(n))) + 1
    src = CountingNodes(BIG_TREE)
    root(src, n)
    assert len(src.calls) == 1 and len(src.calls[0]) <= bound
    for index in range(n):
        src.calls.clear()
        inclusion_proof(src, index, n)
        assert len(src.calls) <= 1
        assert sum(map(len, src.calls)) <= bound
    for old in range(1, n + 1):
        src.calls.clear()
        consistency_proof(src, old, n)
        assert len(src.calls) <= 1
        assert sum(map(len, src.calls)) <= bound
    src.calls.clear()
    CompactRange.from_source(src, n)
    assert len(src.calls) == 1 and len(src.calls[0]) == bin(n).count("1")


def test_a_million_leaves_need_few_reads():
    # no node store of this size is built: a source that answers any coordinate shows
    # how many nodes a proof in a large log touches
    class Anything:
        def __init__(self):
            self.calls = []

        def nodes(self, coords):
            self.calls.append(list(coords))
            return {c: hashlib.sha256(repr(c).encode()).digest() for c in coords}

    src = Anything()
    n = 1_000_003
    inclusion_proof(src, 123_456, n)
    consistency_proof(src, 765_432, n)
    root(src, n)
    assert len(src.calls) == 3
    assert all(len(c) <= 2 * 20 + 1 for c in src.calls)
