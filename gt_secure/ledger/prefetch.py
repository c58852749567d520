"""Evaluate a ledger's slow epsilons on every core before the sequential checks.

A cold ``ledger verify`` of a PRV ledger recomputes every release's running total: Opacus's PRV
accountant discretises the whole history on a domain whose size grows with the total step count
and FFT-composes it (~0.05-0.1 s a release; dp-accounting's PLD reference ~0.01 s). These are
independent pure functions of ``(history, delta, accountant)``, so the verifier lists the ones this
machine has not cached (:func:`release_jobs`) and :func:`prefetch` evaluates them in a pool of
processes, one per available core, storing the values in
:data:`gt_secure.ledger.accountant.PREFETCHED`, where ``compute_epsilon`` and ``reference_epsilon``
look first. The workers call the very functions the sequential path calls, with the same
arguments, so the values are identical (tests/ledger/test_prefetch.py). RDP jobs are left to the
sequential path: they take microseconds once their one-step curve is cached.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import accountant, budget
from gt_secure.ledger.entry import LedgerEntry

__all__ = ["Job", "available_cores", "prefetch", "release_jobs"]

Job = tuple[str, accountant.History, float, str]  # (opacus|reference, history, delta, method)
SLOW_METHODS = ("prv", "pld")
MIN_JOBS = 16  # below this, starting processes costs more than it saves
# Forking a process that runs these (their threads) is unsafe: such callers get fresh workers.
NO_FORK_MODULES = ("torch", "grpc")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def release_jobs(previous: Sequence[LedgerEntry], entry: LedgerEntry) -> list[Job]:
    """The slow evaluations verifying ``entry`` needs: its own and its running total's epsilon
    (Opacus) and their dp-accounting references, as ``verify`` will ask for them."""
    if entry.accountant is None or entry.delta is None or entry.unit is None:
        return []
    method = accountant.REFERENCE_METHOD[entry.accountant]
    prior = [m for e in budget.releases_of(previous, entry.org_id, entry.unit)
             for m in e.mechanisms]
    jobs: list[Job] = []
    for mechanisms in (list(entry.mechanisms), prior + list(entry.mechanisms)):
        try:
            history = accountant._history(mechanisms)
        except InvalidFieldError:
            continue  # verify reports it
        if not history:
            continue
        jobs.append(("opacus", history, entry.delta, entry.accountant))
        jobs.append(("reference", history, entry.delta, method))
    return [job for job in jobs if job[3] in SLOW_METHODS]


def _evaluate(job: Job) -> float:
    name, history, delta, method = job
    if name == "opacus":
        return accountant._opacus_epsilon(history, delta, method)
    return accountant._reference_epsilon(history, delta, method)


def _cost(job: Job) -> int:
    return sum(steps for _, _, steps in job[1])


def _load_before_fork(jobs: Sequence[Job]) -> None:
    """Import the accountants' code once in the parent, so forked workers share it."""
    if any(job[0] == "opacus" and job[3] == "prv" for job in jobs):
        from gt_secure.ledger._opacus_light import accountant_classes

        accountant_classes()
    if any(job[0] == "reference" and job[3] == "pld" for job in jobs):
        from dp_accounting.pld import privacy_loss_distribution  # noqa: F401


def prefetch(jobs: Iterable[Job], workers: int | None = None) -> int:
    """Evaluate the ``jobs`` not yet known, in parallel; return how many were evaluated.

    Runs nothing when fewer than :data:`MIN_JOBS` are new or only one core is available: the
    sequential path then computes them as before. Workers are forked (sharing the loaded
    accountant code) unless torch or gRPC is loaded, whose threads make forking unsafe."""
    todo = sorted({job for job in jobs if job not in accountant.PREFETCHED}, key=_cost,
                  reverse=True)
    workers = min(workers or available_cores(), len(todo))
    if workers < 2 or len(todo) < MIN_JOBS:
        return 0
    fork = ("fork" in multiprocessing.get_all_start_methods()
            and not any(name in sys.modules for name in NO_FORK_MODULES))
    if fork:
        _load_before_fork(todo)
    context = multiprocessing.get_context("fork" if fork else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for job, value in zip(todo, pool.map(_evaluate, todo, chunksize=1), strict=True):
            accountant.PREFETCHED[job] = value
    return len(todo)
