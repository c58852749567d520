"""SecAgg+ masks from a cryptographic PRG keyed by the full seed (ChaCha20), without forking Flower.

Flower 1.42's ``secaggplus_utils.pseudo_rand_gen`` XOR-folds every seed (a 32-byte private-mask
seed or a 44-byte base64 ECDH pairwise key) to 32 bits and expands it with NumPy's Mersenne
Twister (flwrlabs/flower#7522). A server that sees one organization's masked vector can then
search at most 2**32 folds per unknown mask and read the update. :func:`mask_prg` keeps the
function's contract (one int64 array per shape, values in ``[0, num_range)``, one stream
consumed in order over the shapes) but draws from ChaCha20 keyed by ``SHA-256(DOMAIN || seed)``:

- key ``= SHA-256(DOMAIN || seed)`` (every seed byte counts), 16-byte ``cryptography`` nonce of
  zeros (RFC 8439 counter 0, nonce 0: each key is used for one stream only);
- the keystream is read as little-endian uint64 words; a word ``w`` is kept iff
  ``w < 2**64 - (2**64 mod num_range)`` (never rejects for a power of two) and gives
  ``w mod num_range``. Values are exactly uniform on ``[0, num_range)`` (Flower's
  ``randint(0, num_range - 1)`` never draws ``num_range - 1``).

Scope: :func:`mask_prg_scope` puts a dispatcher into the two module globals that Flower's code
looks up (``secaggplus_mod.pseudo_rand_gen`` on the client, ``secaggplus_workflow.pseudo_rand_gen``
on the server) while at least one scope is open anywhere in the process, and the dispatcher uses
:func:`mask_prg` only in the context (thread) that opened a scope; any other caller gets Flower's
function. Agreement: the server adds :data:`KEY_MASK_PRG` to its SETUP config, the client refuses
a SETUP without it and echoes it in its reply, and the server drops a node whose reply lacks it —
a mismatched pair fails at key setup instead of summing garbage.
"""

from __future__ import annotations

import dis
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
from typing import cast

import flwr
import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common.secure_aggregation import secaggplus_utils
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from gt_secure.errors import GtSecureError, InvalidFieldError

__all__ = [
    "DOMAIN",
    "KEY_MASK_PRG",
    "MASK_PRG",
    "flower_internals_problems",
    "mask_prg",
    "mask_prg_scope",
    "setup_reply_problem",
    "tag_setup",
    "with_mask_prg",
]

#: Name and version of the mask PRG; the server sends it at SETUP and the client echoes it.
MASK_PRG = "gt-secure/chacha20-sha256/v1"
#: Key of :data:`MASK_PRG` in the SecAgg+ config record (ignored by Flower's own code).
KEY_MASK_PRG = "gt_mask_prg"
#: Domain separation prefix of the ChaCha20 key derivation.
DOMAIN = b"gt-secure/secagg+/mask-prg/v1\x00"
MIN_SEED_BYTES = 16
FLOWER_SERIES = "1.42."
_CLIENT_MODULE = "flwr.client.mod.secure_aggregation.secaggplus_mod"
_SERVER_MODULE = "flwr.server.workflow.secure_aggregation.secaggplus_workflow"
#: Flower functions that must call ``pseudo_rand_gen`` through their module's global.
_CALLERS = ((_CLIENT_MODULE, "_collect_masked_vectors"),
            (_SERVER_MODULE, "SecAggPlusWorkflow.unmask_stage"))
_SIGNATURE = ["seed", "num_range", "dimensions_list"]

Prg = Callable[[bytes, int, list[tuple[int, ...]]], list[np.ndarray]]
_FLOWER_PRG: Prg = getattr(secaggplus_utils, "pseudo_rand_gen", None)  # type: ignore[assignment]


def mask_prg(seed: bytes, num_range: int,
             dimensions_list: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Uniform int64 masks in ``[0, num_range)``, one array per shape, from ChaCha20(seed)."""
    if not isinstance(seed, bytes) or len(seed) < MIN_SEED_BYTES:
        raise InvalidFieldError("seed", seed, f"bytes of length >= {MIN_SEED_BYTES}")
    if not isinstance(num_range, int) or not 2 <= num_range <= 2**63:
        raise InvalidFieldError("num_range", num_range, "an int in [2, 2**63]")
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape in dimensions_list]
    digest = hashes.Hash(hashes.SHA256())
    digest.update(DOMAIN + seed)
    stream = Cipher(algorithms.ChaCha20(digest.finalize(), bytes(16)), mode=None).encryptor()
    total = sum(sizes)
    words = np.frombuffer(stream.update(bytes(8 * total)), dtype="<u8")
    if num_range & (num_range - 1) == 0:  # power of two: every word kept, w mod R = w & (R-1)
        flat = words & np.uint64(num_range - 1)
    else:
        limit = np.uint64(2**64 - 2**64 % num_range)
        kept = [words[words < limit]]
        while (have := sum(len(k) for k in kept)) < total:
            more = np.frombuffer(stream.update(bytes(8 * (total - have))), dtype="<u8")
            kept.append(more[more < limit])
        flat = np.concatenate(kept)[:total] % np.uint64(num_range)
    values, out, start = flat.view(np.int64), [], 0  # every value < num_range <= 2**63
    for shape, size in zip(dimensions_list, sizes, strict=True):
        out.append(values[start:start + size].reshape(shape))
        start += size
    return out


def flower_internals_problems() -> list[str]:
    """What no longer matches the Flower internals this module replaces (empty when all do)."""
    problems = []
    if not flwr.__version__.startswith(FLOWER_SERIES):
        problems.append(f"flwr.__version__ must be {FLOWER_SERIES}x, got {flwr.__version__}")
    params = list(inspect.signature(_FLOWER_PRG).parameters) if callable(_FLOWER_PRG) else None
    if params != _SIGNATURE:
        problems.append(f"secaggplus_utils.pseudo_rand_gen must take {_SIGNATURE}, got {params}")
    for module_name, qualname in _CALLERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            problems.append(f"{module_name} must exist")
            continue
        if getattr(module, "pseudo_rand_gen", None) not in (_FLOWER_PRG, _dispatch):
            problems.append(f"{module_name}.pseudo_rand_gen must be Flower's pseudo_rand_gen")
        func: object = module
        for part in qualname.split("."):
            func = getattr(func, part, None)
        code = getattr(func, "__code__", None)
        if code is None or not any(ins.opname == "LOAD_GLOBAL" and ins.argval == "pseudo_rand_gen"
                                   for ins in dis.get_instructions(code)):
            problems.append(f"{module_name}.{qualname} must call the global pseudo_rand_gen")
    return problems


def _check_flower() -> None:
    problems = flower_internals_problems()
    if problems:
        raise InvalidFieldError("flwr", flwr.__version__, "1.42.x with the SecAgg+ internals "
                                "gt-secure replaces (" + "; ".join(problems) + ")")


_ACTIVE: ContextVar[bool] = ContextVar("gt_secure_mask_prg", default=False)
_LOCK = threading.Lock()
_holders = 0


def _dispatch(seed: bytes, num_range: int,
              dimensions_list: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Flower's ``pseudo_rand_gen`` signature: ours inside a scope, Flower's outside."""
    if _ACTIVE.get():
        return mask_prg(seed, num_range, dimensions_list)
    return _FLOWER_PRG(seed, num_range, dimensions_list)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name, _ in _CALLERS]


@contextmanager
def mask_prg_scope() -> Iterator[None]:
    """Within this block (this thread/context only), Flower's SecAgg+ masks come from
    :func:`mask_prg`. Nests and may be open in several threads at once."""
    global _holders
    with _LOCK:
        modules = _modules()
        for module in modules:  # check both before installing either
            current = getattr(module, "pseudo_rand_gen", None)
            if current not in (_FLOWER_PRG, _dispatch):
                raise GtSecureError(f"{module.__name__}.pseudo_rand_gen was replaced by "
                                    f"{current!r}; refusing to mask with an unknown PRG")
        for module in modules:
            module.pseudo_rand_gen = _dispatch  # type: ignore[attr-defined]
        _holders += 1
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        with _LOCK:
            _holders -= 1
            if _holders == 0:
                for module in _modules():
                    module.pseudo_rand_gen = _FLOWER_PRG  # type: ignore[attr-defined]


def _configs(msg: Message) -> dict[str, object] | None:
    record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    return cast(dict[str, object], record) if record is not None else None


def with_mask_prg(inner: Mod) -> Mod:
    """Client mod: run ``inner`` (Flower's ``secaggplus_mod``) with :func:`mask_prg` masks.

    A SETUP config without ``KEY_MASK_PRG == MASK_PRG`` is refused before any key is made
    (a server on Flower's PRG could not unmask), and the SETUP reply carries the tag.
    """

    def mask_prg_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        configs = _configs(msg) if msg.metadata.message_type == MessageType.TRAIN else None
        setup = configs is not None and configs.get(Key.STAGE) == Stage.SETUP
        if setup and configs is not None and configs.get(KEY_MASK_PRG) != MASK_PRG:
            raise InvalidFieldError(f"SecAgg+ config {KEY_MASK_PRG}", configs.get(KEY_MASK_PRG),
                                    f"{MASK_PRG!r} (this organization masks with ChaCha20, "
                                    "not Flower's 32-bit-seeded Mersenne Twister)")
        with mask_prg_scope():
            reply = inner(msg, ctxt, call_next)
        reply_configs = None if reply.has_error() else _configs(reply)
        if setup and reply_configs is not None:
            reply_configs[KEY_MASK_PRG] = MASK_PRG
        return reply

    return mask_prg_mod


def tag_setup(messages: Sequence[Message]) -> bool:
    """Server: add the PRG tag to SETUP messages; whether ``messages`` are the SETUP stage."""
    setup = False
    for msg in messages:
        configs = _configs(msg)
        if configs is not None and configs.get(Key.STAGE) == Stage.SETUP:
            configs[KEY_MASK_PRG] = MASK_PRG
            setup = True
    return setup


def setup_reply_problem(reply: Message) -> str | None:
    """Server: why a SETUP reply cannot join a round masked with :func:`mask_prg` (or None)."""
    configs = _configs(reply) or {}
    if configs.get(KEY_MASK_PRG) == MASK_PRG:
        return None
    return str(InvalidFieldError(f"SecAgg+ reply {KEY_MASK_PRG}", configs.get(KEY_MASK_PRG),
                                 f"{MASK_PRG!r} (the node masks with another PRG: dropped "
                                 "before key sharing)"))


_check_flower()  # at import: a Flower whose internals moved fails here, not mid-round
