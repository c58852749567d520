"""SecAgg+ masks from ChaCha20 (gt_secure.aggregation.secagg_prg) instead of Flower 1.42's
32-bit-folded Mersenne Twister (flwrlabs/flower#7522).

The reference for :func:`mask_prg` is an independent pure-Python ChaCha20 block function
(RFC 8439 section 2.3, checked against the RFC's test vector) and ``hashlib`` SHA-256; the seed
search of the attack uses an independent vectorized MT19937 (init_genrand + one twist), whose
hits are confirmed with Flower's own ``pseudo_rand_gen``.
"""

from __future__ import annotations

import dis
import hashlib
import importlib
import struct
import subprocess
import sys
import threading

import flwr
import numpy as np
import pytest
from flwr.common.secure_aggregation import secaggplus_utils
from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
from flwr.common.secure_aggregation.quantization import quantize
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import generate_key_pairs
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.aggregation import secagg_prg
from gt_secure.aggregation.secagg_prg import DOMAIN, mask_prg, mask_prg_scope
from gt_secure.errors import GtSecureError, InvalidFieldError

R32 = 2**32
CLIENT = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
SERVER = importlib.import_module("flwr.server.workflow.secure_aggregation.secaggplus_workflow")


# --- Flower's internals that the scope replaces --------------------------------------------

def test_flower_internals_are_the_ones_replaced() -> None:
    assert flwr.__version__.startswith("1.42.")
    assert secagg_prg.flower_internals_problems() == []
    assert CLIENT.pseudo_rand_gen is pseudo_rand_gen  # outside any scope: Flower's own
    assert SERVER.pseudo_rand_gen is pseudo_rand_gen
    for func in (CLIENT._collect_masked_vectors, SERVER.SecAggPlusWorkflow.unmask_stage):
        assert any(ins.opname == "LOAD_GLOBAL" and ins.argval == "pseudo_rand_gen"
                   for ins in dis.get_instructions(func))


def test_moved_internals_and_other_versions_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flwr, "__version__", "1.43.0")
    monkeypatch.setattr(SERVER, "pseudo_rand_gen", lambda seed, num_range, dims: [])
    # A caller that reaches the PRG through the module attribute would bypass the scope.
    monkeypatch.setattr(CLIENT, "_collect_masked_vectors",
                        lambda *args: secaggplus_utils.pseudo_rand_gen(*args))
    problems = secagg_prg.flower_internals_problems()
    assert any("1.43.0" in p for p in problems)
    assert any("secaggplus_workflow.pseudo_rand_gen must be" in p for p in problems)
    assert any("_collect_masked_vectors must call the global" in p for p in problems)
    with pytest.raises(InvalidFieldError, match="flwr must be 1.42.x"):
        secagg_prg._check_flower()
    with pytest.raises(GtSecureError, match="refusing to mask"), mask_prg_scope():
        pass
    assert CLIENT.pseudo_rand_gen is pseudo_rand_gen  # nothing left installed


def test_import_refuses_another_flower_version() -> None:
    code = ("import flwr; flwr.__version__ = '1.43.0'\n"
            "import gt_secure.aggregation.secagg_prg")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0
    assert "flwr must be 1.42.x" in done.stderr and "got 1.43.0" in done.stderr


def test_scope_applies_to_its_own_thread_only_and_restores_flower() -> None:
    seed, dims = bytes(range(32)), [(6,)]
    seen: dict[str, list[np.ndarray]] = {}
    with mask_prg_scope():
        with mask_prg_scope():  # nests
            assert CLIENT.pseudo_rand_gen is SERVER.pseudo_rand_gen is not pseudo_rand_gen
        seen["client"] = CLIENT.pseudo_rand_gen(seed, R32, dims)
        seen["server"] = SERVER.pseudo_rand_gen(seed, R32, dims)
        other = threading.Thread(target=lambda: seen.update(other=CLIENT.pseudo_rand_gen(
            seed, R32, dims)))
        other.start()
        other.join()
    assert CLIENT.pseudo_rand_gen is SERVER.pseudo_rand_gen is pseudo_rand_gen
    ours, flowers = mask_prg(seed, R32, dims)[0], pseudo_rand_gen(seed, R32, dims)[0]
    np.testing.assert_array_equal(seen["client"][0], ours)
    np.testing.assert_array_equal(seen["server"][0], ours)
    np.testing.assert_array_equal(seen["other"][0], flowers)  # a thread outside the scope
    assert not np.array_equal(ours, flowers)


# --- (a) seeds with one 32-bit fold ----------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=st.sampled_from([32, 44]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       delta=st.integers(1, 2**32 - 1), words=st.sampled_from([(0, 1), (2, 7), (3, 5)]))
def test_same_fold_same_flower_masks_different_chacha_masks(
        seed: bytes, delta: int, words: tuple[int, int]) -> None:
    other = bytearray(seed)
    for word in words:  # XOR delta into two 4-byte words: the XOR fold is unchanged
        value = int.from_bytes(other[4 * word:4 * word + 4], "little") ^ delta
        other[4 * word:4 * word + 4] = value.to_bytes(4, "little")
    dims = [(16,), ()]
    for a, b in zip(pseudo_rand_gen(seed, R32, dims), pseudo_rand_gen(bytes(other), R32, dims),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(mask_prg(seed, R32, dims)[0], mask_prg(bytes(other), R32, dims)[0])


def test_contract_shapes_dtype_range_one_stream_and_uniformity() -> None:
    seed = bytes(range(44))
    masks = mask_prg(seed, R32, [(3, 4), (), (5,)])
    assert [m.shape for m in masks] == [(3, 4), (), (5,)]
    assert all(m.dtype == np.int64 and m.min() >= 0 and m.max() < R32 for m in masks)
    joined = np.concatenate([m.reshape(-1) for m in masks])
    np.testing.assert_array_equal(joined, mask_prg(seed, R32, [(18,)])[0])  # one stream
    counts = np.bincount(mask_prg(seed, 10, [(100_000,)])[0], minlength=10)
    # Binomial(1e5, 0.1): sd ~95; 5 sd per cell. Value 9 (Flower never draws R-1) occurs.
    assert counts.shape == (10,) and np.all(np.abs(counts - 10_000) < 475)
    with pytest.raises(InvalidFieldError, match="seed must be bytes of length >= 16"):
        mask_prg(bytes(8), R32, [(2,)])
    with pytest.raises(InvalidFieldError, match="num_range must be an int in"):
        mask_prg(seed, 1, [(2,)])


# --- (d) reference: pure-Python ChaCha20 (RFC 8439) + hashlib --------------------------------

def _chacha20_block(key: bytes, counter: int, nonce: bytes) -> bytes:
    """RFC 8439 section 2.3, written from the RFC."""
    def rotl(v: int, c: int) -> int:
        return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))

    def quarter(s: list[int], a: int, b: int, c: int, d: int) -> None:
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)  # noqa: E702
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)  # noqa: E702
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)  # noqa: E702
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)  # noqa: E702

    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *struct.unpack("<8I", key),
            counter, *struct.unpack("<3I", nonce)]
    s = list(init)
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                           (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
            quarter(s, a, b, c, d)
    return struct.pack("<16I", *[(x + y) & 0xFFFFFFFF for x, y in zip(s, init, strict=True)])


def _reference_masks(seed: bytes, num_range: int, count: int) -> np.ndarray:
    key, out, block = hashlib.sha256(DOMAIN + seed).digest(), [], 0
    limit = 2**64 - 2**64 % num_range
    while len(out) < count:
        words = struct.unpack("<8Q", _chacha20_block(key, block, bytes(12)))
        out += [w % num_range for w in words if w < limit]
        block += 1
    return np.array(out[:count], dtype=np.int64)


def test_reference_chacha20_block_matches_rfc8439_vector() -> None:
    block = _chacha20_block(bytes(range(32)), 1, bytes.fromhex("000000090000004a00000000"))
    assert block.hex() == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")


@pytest.mark.parametrize("num_range", [2**32, 2**20, 3 * 2**61, 1_000_003])
def test_mask_prg_equals_the_reference(num_range: int) -> None:
    # 3 * 2**61 rejects a quarter of the words, so the rejection rule is exercised too.
    seed = hashlib.sha256(b"fixed seed").digest() + b"pairwise"
    got = mask_prg(seed, num_range, [(37,), (2, 3)])
    want = _reference_masks(seed, num_range, 43)
    np.testing.assert_array_equal(np.concatenate([got[0], got[1].reshape(-1)]), want)


# --- (b) a server recovers a masked vector by searching Flower's folded seeds ----------------

def _mt_first_words(folds: np.ndarray, k: int) -> np.ndarray:
    """First ``k`` MT19937 outputs after ``RandomState(fold)``, for every fold at once."""
    rows, cur = {0: folds.astype(np.uint32)}, folds.astype(np.uint32)
    for i in range(1, 397 + k):  # init_genrand, keeping the rows the first twist reads
        cur = (cur ^ (cur >> np.uint32(30))) * np.uint32(1812433253) + np.uint32(i)
        if i <= k or i >= 397:
            rows[i] = cur
    out = []
    for i in range(k):
        y = (rows[i] & np.uint32(0x80000000)) | (rows[i + 1] & np.uint32(0x7FFFFFFF))
        v = rows[i + 397] ^ (y >> np.uint32(1)) ^ ((y & np.uint32(1)) * np.uint32(0x9908B0DF))
        v ^= v >> np.uint32(11)
        v ^= (v << np.uint32(7)) & np.uint32(0x9D2C5680)
        v ^= (v << np.uint32(15)) & np.uint32(0xEFC60000)
        out.append(v ^ (v >> np.uint32(18)))
    return np.stack(out, axis=1)


def _search(z: np.ndarray, folds: np.ndarray, target: int, prg_check: int = 12) -> list[int]:
    """Folds whose Flower mask leaves every entry of ``z - mask`` a valid quantized value."""
    words = _mt_first_words(folds, prg_check).astype(np.int64)  # randint(0, 2**32 - 1) = word
    hits = folds[np.all((z[:prg_check] - words) % R32 <= target, axis=1)]
    return [int(f) for f in hits if np.all((z - pseudo_rand_gen(
        int(f).to_bytes(4, "little"), R32, [z.shape])[0]) % R32 <= target)]


@pytest.mark.parametrize("prg", ["flower", "chacha20"])
def test_server_recovers_a_vector_from_flower_masks_but_not_from_chacha(prg: str) -> None:
    # Prepare: organization A's update, quantized as in a 3-org gt-secure round (c=1, T=2**30),
    # masked with its private seed b_A and pairwise ECDH keys with B and C. The server declares
    # A dropped after receiving y_A, reconstructs A's sk1 from the shares and with it every
    # pairwise mask: only b_A is unknown. It searches a 2**20 slice of the 2**32 folds that
    # contains b_A's fold (the whole space is 4096 such slices).
    rng = np.random.default_rng(7)
    c, target = 1.0, 2**30
    x = rng.uniform(-c, c, 256)
    (q,) = quantize([x], c, target)
    b_a = rng.bytes(32)
    sk_a, _ = generate_key_pairs()
    pairwise = [generate_shared_key(sk_a, generate_key_pairs()[1]) for _ in range(2)]
    masks = pseudo_rand_gen if prg == "flower" else mask_prg
    y = q.astype(np.int64) + masks(b_a, R32, [q.shape])[0]
    y += masks(pairwise[0], R32, [q.shape])[0] - masks(pairwise[1], R32, [q.shape])[0]
    y %= R32
    fold = np.bitwise_xor.reduce(np.frombuffer(b_a, dtype="<u4"))
    folds = (fold - np.uint32(rng.integers(2**20)) + np.arange(2**20, dtype=np.uint32))

    # Execute: the server strips the pairwise masks it reconstructed, then searches the folds.
    z = (y - masks(pairwise[0], R32, [q.shape])[0] + masks(pairwise[1], R32, [q.shape])[0]) % R32
    hits = _search(z, folds, target)

    # Assert: Flower's masks give A's exact quantized vector (x within one step); ours give none.
    if prg == "flower":
        assert hits == [int(fold)]
        recovered = (z - pseudo_rand_gen(b_a, R32, [q.shape])[0]) % R32
        np.testing.assert_array_equal(recovered, q)
        assert np.max(np.abs(recovered * 2 * c / target - c - x)) <= 2 * c / target
    else:
        assert hits == []
