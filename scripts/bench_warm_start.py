"""The recommender's warm start on this machine: the vectorised ALS against the per-row loop it replaced,
and the memory of the sparse PureSVD against the dense users x items matrix it replaced.

On random logs the size of MovieLens-100K (943 users, 1682 items, 100k ratings) and MovieLens-1M
(6040 users, 3706 items, 1M ratings), 10 factors, 15 iterations, it times
:func:`~personalize.recommend.als.fit_biased_als` against the loop (one ``np.linalg.solve`` per user
and per item, kept below as the baseline) and checks they agree. Then, in a fresh subprocess, it runs
:func:`~personalize.recommend.ranking.implicit_item_vectors` on 20M random ratings of 138k users x
27k items (MovieLens-20M-sized) and reports the peak resident memory against the 4 bytes per cell a
dense float32 matrix needs. Prints a markdown table, the CPU flags and the torch thread count (on a
machine shared with other work, ``--threads 1`` avoids torch's threads waiting on each other)::

    python scripts/bench_warm_start.py
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from personalize.provenance import cpu_flags
from personalize.recommend.als import ITEM_SHRINKAGE, USER_SHRINKAGE, fit_biased_als

FACTORS, RIDGE, ITERATIONS = 10, 10.0, 15
SIZES = {"MovieLens-100K-sized": (943, 1682, 100_000), "MovieLens-1M-sized": (6040, 3706, 1_000_000)}
SVD_SIZE = (138_000, 27_000, 20_000_000)
SVD_FACTORS = 20


@dataclass(frozen=True)
class Log:
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_users: int
    n_items: int


def random_log(n_users: int, n_items: int, size: int, seed: int = 0) -> Log:
    """Uniformly random (user, item) pairs with 1-5 star ratings."""
    rng = np.random.default_rng(seed)
    return Log(rng.integers(0, n_users, size), rng.integers(0, n_items, size),
               rng.integers(1, 6, size).astype(np.float64), n_users, n_items)


# --- the baseline: the per-row loop the library replaced ---------------------------------------------


def loop_als(log: Log) -> np.ndarray:
    """Item factors of biased ALS with a Python-level ridge solve per user and per item."""

    def biases(keys: np.ndarray, values: np.ndarray, n_keys: int, shrinkage: float) -> np.ndarray:
        return np.bincount(keys, weights=values, minlength=n_keys) / (np.bincount(keys, minlength=n_keys) + shrinkage)

    def groups(keys: np.ndarray, n_keys: int, partners: np.ndarray, values: np.ndarray) -> list:
        order = np.argsort(keys, kind="stable")
        bounds = np.cumsum(np.bincount(keys, minlength=n_keys))[:-1]
        return [(partners[idx], values[idx]) for idx in np.split(order, bounds)]

    def step(grouped: list, partner_factors: np.ndarray) -> np.ndarray:
        out = np.zeros((len(grouped), partner_factors.shape[1]))
        for row, (partners, residuals) in enumerate(grouped):
            if partners.size:
                x = partner_factors[partners]
                out[row] = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ residuals)
        return out

    mu = log.ratings.mean()
    residuals = log.ratings - mu
    residuals = residuals - biases(log.items, residuals, log.n_items, ITEM_SHRINKAGE)[log.items]
    residuals = residuals - biases(log.users, residuals, log.n_users, USER_SHRINKAGE)[log.users]
    by_user = groups(log.users, log.n_users, log.items, residuals)
    by_item = groups(log.items, log.n_items, log.users, residuals)
    item_factors = np.random.default_rng(0).normal(0.0, 0.1, size=(log.n_items, FACTORS))
    for _ in range(ITERATIONS):
        item_factors = step(by_item, step(by_user, item_factors))
    return item_factors


def vectorised_als(log: Log) -> np.ndarray:
    return fit_biased_als(log.users, log.items, log.ratings, log.n_users, log.n_items, factors=FACTORS,
                          ridge=RIDGE, iterations=ITERATIONS, seed=0).item_factors


def best_time(function, log: Log, repeats: int) -> tuple[float, np.ndarray]:
    """The fastest of ``repeats`` runs (seconds) and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(log)
        times.append(time.perf_counter() - start)
    return min(times), result


# --- PureSVD memory, measured in a fresh process ----------------------------------------------------


def measure_svd_memory() -> None:
    """(Run in the subprocess.) Print JSON: resident memory before the call and at its peak, in bytes."""
    from personalize.recommend.ranking import implicit_item_vectors

    n_users, n_items, size = SVD_SIZE
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, n_users, size), rng.integers(0, n_items, size)
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * resource.getpagesize()
    start = time.perf_counter()
    vectors, _ = implicit_item_vectors(users, items, n_items, SVD_FACTORS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(json.dumps({"before": before, "peak": peak, "seconds": seconds, "shape": list(vectors.shape)}))


def svd_memory() -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--svd-memory"], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- the report ------------------------------------------------------------------------------------------




def main() -> None:
    rows = ["| workload | loop ALS / vectorised ALS (time ratio) | max abs difference of item factors |",
            "|---|---|---|"]
    for name, (n_users, n_items, size) in SIZES.items():
        log = random_log(n_users, n_items, size)
        repeats = 3 if size <= 100_000 else 1
        loop_seconds, expected = best_time(loop_als, log, repeats)
        vector_seconds, got = best_time(vectorised_als, log, repeats)
        rows.append(f"| {name}: {n_users} users, {n_items} items, {size:,} ratings, {FACTORS} factors, "
                    f"{ITERATIONS} iterations | {loop_seconds / vector_seconds:.1f}x "
                    f"(loop {loop_seconds:.2f} s, vectorised {vector_seconds:.2f} s) "
                    f"| {np.abs(expected - got).max():.1e} |")
    memory = svd_memory()
    n_users, n_items, size = SVD_SIZE
    dense = n_users * n_items * 4
    rows += ["", "| PureSVD `implicit_item_vectors` | bytes |", "|---|---|",
             f"| {n_users:,} users x {n_items:,} items, {size:,} ratings, {SVD_FACTORS} factors: "
             f"peak RSS of the process ({memory['seconds']:.1f} s) | {memory['peak'] / 2**30:.2f} GiB |",
             f"| of which before the call (interpreter, torch, inputs) | {memory['before'] / 2**30:.2f} GiB |",
             f"| a dense float32 users x items matrix alone | {dense / 2**30:.2f} GiB "
             f"({dense / memory['peak']:.0f}x the whole process's peak) |"]
    print("\n".join(rows))
    print(f"\nCPU flags: {cpu_flags()}; torch threads: {torch.get_num_threads()}; torch {torch.__version__}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--svd-memory", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    if arguments.svd_memory:
        measure_svd_memory()
    else:
        main()
