"""Batch adaptation at scale: users/s, peak memory and bank bytes at 10k, 100k and 1M users.

For each size, a synthetic log is drawn from the shipped ``movielens`` model over a catalogue of
``--items`` items (``personalize data synth``: long-tailed histories, ``--ratings-per-user`` on
average, seed ``--seed``), then ``personalize adapt-users --top 10`` runs in a fresh process (so its
peak memory is its own). Side by side in the same run: the *floor*, one pass that only reads the log
in the same chunks (what any job over the log pays), and at the smallest size the former path,
``Recommender.adapt_many`` then ``UserModel.recommend`` per user (scripts/adapt_users.py before the
bank). With ``--engines local,ray`` the same job also runs with ``--engine ray`` on 2 local Ray
workers (``--ray-workers``), again in a fresh process that starts its own Ray instance (its time
includes starting it), and its bank is compared with the local one byte for byte. Then 2,000 random
users are read back from the largest bank (p50/p99 latency of ``StateBank.get``). Writes
docs/scale.md and docs/scale.json; one command regenerates them::

    python scripts/bench_scale.py                       # 10k, 100k, 1M users (about 15 minutes on 2 cores)
    python scripts/bench_scale.py --users 10000,100000  # quicker
    python scripts/bench_scale.py --users 10000,100000 --engines local,ray --out /tmp/scale.md
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import personalize as pz
from personalize.bank import StateBank
from personalize.bench_runs import read_report_numbers, run_fresh, write_report_files
from personalize.data.synthetic import write_synthetic
from personalize.provenance import cpu_flags

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
from dataclasses import asdict
from personalize.jobs.reading import grouped_chunks, scan_log
from personalize.jobs.runner import peak_rss_mb
from personalize.jobs.users import adapt_users
log, model, out, mode, workers = sys.argv[1:6]
if mode == "floor":
    started = time.perf_counter()
    users = sum(chunk["user_id"].n_unique() for chunk in grouped_chunks(
        scan_log(log, ["user_id", "item_id", "rating"]), "user_id", keys_per_chunk=4096))
    print(json.dumps({"users": users, "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}))
else:
    options = {} if mode == "local" else {"engine": mode, "workers": int(workers)}
    summary = adapt_users(log, model, out, top=10, progress=False, **options)
    print(json.dumps(asdict(summary), default=str))
"""


def folder_bytes(path: Path, pattern: str) -> int:
    return sum(file.stat().st_size for file in path.glob(pattern))


def same_bank(bank: Path, reference: Path) -> bool:
    """Whether two banks hold the same shard and top-N bytes and the same index but for ``adapted_at``."""
    import polars as pl

    for folder in ("shards", "top"):
        mine, theirs = sorted((bank / folder).glob("part-*")), sorted((reference / folder).glob("part-*"))
        if [f.name for f in mine] != [f.name for f in theirs]:
            return False
        if any(a.read_bytes() != b.read_bytes() for a, b in zip(mine, theirs)):
            return False
    mine, theirs = sorted((bank / "index").glob("part-*")), sorted((reference / "index").glob("part-*"))
    return [f.name for f in mine] == [f.name for f in theirs] and all(
        pl.read_parquet(a).drop("adapted_at").equals(pl.read_parquet(b).drop("adapted_at"))
        for a, b in zip(mine, theirs))


def former_path(model_folder: Path, log_folder: Path, users: int) -> float:
    """Users/s of adapt_many + recommend per user (the path before the bank) on the first ``users`` users."""
    import polars as pl

    recommender = pz.load(model_folder)
    log = pl.scan_parquet(log_folder / "*.parquet").filter(pl.col("user_id") < users).collect()
    started = time.perf_counter()
    adapted = recommender.adapt_many(log)
    for model in adapted.values():
        model.recommend(n=10)
    return len(adapted) / (time.perf_counter() - started)


def lookups(bank_folder: Path, model_folder: Path, count: int, seed: int) -> dict[str, float]:
    bank = StateBank(bank_folder, model=pz.load(model_folder))
    ids = bank.index()["id"].to_numpy()
    chosen = np.random.default_rng(seed).choice(ids, size=min(count, len(ids)), replace=False)
    bank.get(int(chosen[0]))  # opens the index once
    seconds = []
    for user in chosen:
        started = time.perf_counter()
        bank.get(int(user))
        seconds.append(time.perf_counter() - started)
    milliseconds = 1000 * np.asarray(seconds)
    return {"p50_ms": float(np.percentile(milliseconds, 50)), "p99_ms": float(np.percentile(milliseconds, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="10000,100000,1000000", help="comma-separated log sizes")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--ratings-per-user", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--former-users", type=int, default=2_000, help="users timed on the former path")
    parser.add_argument("--engines", default="local", help="comma-separated: local, ray (each in a fresh process)")
    parser.add_argument("--ray-workers", type=int, default=2, help="workers of the ray engine (a local Ray instance)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scale.md")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the .json beside --out, measuring nothing")
    args = parser.parse_args()
    if args.report_only:
        saved = read_report_numbers(args.out)
        write_report(args, saved["rows"], saved["machine"])
        return
    sizes = [int(size) for size in args.users.split(",")]
    engines = [engine.strip() for engine in args.engines.split(",")]
    if any(engine not in ("local", "ray") for engine in engines) or len(set(engines)) < len(engines):
        parser.error(f"--engines must list local and/or ray, each once; got {args.engines!r}")
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU flags: {cpu_flags()}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch:
        for size in sizes:
            data = Path(scratch) / f"log-{size}"
            write_synthetic(data, pz.load("movielens"), users=size, items=args.items,
                            ratings_per_user=args.ratings_per_user, seed=args.seed, log=lambda line: None)
            floor = run_fresh(CHILD, str(data / "ratings"), str(data / "model"), "", "floor", "0")
            for engine in engines:
                bank_folder = data / f"bank-{engine}"
                job = run_fresh(CHILD, str(data / "ratings"), str(data / "model"), str(bank_folder), engine,
                                str(args.ray_workers))
                row = measure(args, size, engine, job, floor, data, bank_folder, first=size == sizes[0],
                              last=size == sizes[-1] and engine == engines[0])
                if engine != engines[0]:
                    row["same_bank_as"] = engines[0]
                    row["same_bank"] = same_bank(bank_folder, data / f"bank-{engines[0]}")
                rows.append(row)
                print(json.dumps(row), flush=True)
    write_report(args, rows, machine)


def measure(args: argparse.Namespace, size: int, engine: str, job: dict, floor: dict, data: Path, bank_folder: Path,
            *, first: bool, last: bool) -> dict:
    """One row of the table: the job's rate and memory, the bank's bytes; at the first size the former
    path (local rows only), and lookups and verify from the largest bank."""
    bank = StateBank(bank_folder)
    ratings = int(bank.index()["count"].sum())
    shards = folder_bytes(bank_folder, "shards/*.safetensors")
    stats = job["engine"]
    row = {"users": size, "engine": engine, "workers": stats["workers"], "ratings": ratings, "items": args.items,
           "job_seconds": job["seconds"], "users_per_s": job["adapted"] / job["seconds"],
           "startup_seconds": stats["startup_seconds"], "floor_seconds": floor["seconds"],
           "job_over_floor": job["seconds"] / floor["seconds"], "peak_rss_mb": job["peak_rss_mb"],
           "worker_peak_rss_mb": stats["worker_peak_rss_mb"], "floor_peak_rss_mb": floor["peak_rss_mb"],
           "shard_bytes_per_user": shards / size, "bank_bytes_per_user": folder_bytes(bank_folder, "**/*.*") / size,
           "parts": job["parts"]}
    if first and engine == "local":
        row["former_users_per_s"] = former_path(data / "model", data / "ratings", args.former_users)
    if last:
        row.update(lookups(bank_folder, data / "model", 2_000, args.seed))
        row["verified"] = StateBank(bank_folder).verify().ok
    return row


def write_report(args: argparse.Namespace, rows: list[dict], machine: str) -> None:
    default = args.users == "10000,100000,1000000"
    command = "python scripts/bench_scale.py" + ("" if default else f" --users {args.users}") + (
        "" if args.engines == "local" else f" --engines {args.engines}")
    local = [row for row in rows if row.get("engine", "local") == "local"]
    ray_rows = [row for row in rows if row.get("engine") == "ray"]
    lines = [
        "# Batch adaptation at scale", "",
        f"Generated by `{command}` (seed {args.seed}; {args.items:,} items; {args.ratings_per_user:g} ratings per "
        f"user on average, long-tailed) on {machine}. Each size is a synthetic log drawn from the shipped "
        "`movielens` model (`personalize data synth`), adapted by `personalize adapt-users --top 10` in a fresh "
        "process: every user's posterior into the bank and their 10 best unrated items into `top/`.", "",
        "The *floor* is one pass that only reads the log in the same chunks, timed in the same run; "
        "*job / floor* is how many times that the whole job costs.", "",
        "| users | engine | ratings | job | users/s | job / floor | peak memory | floor's peak memory "
        "| shard bytes per user | bank bytes per user |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        engine = f"ray, {row['workers']} workers" if row.get("engine") == "ray" else "local"
        memory = f"{row['peak_rss_mb']:,.0f} MB"
        if row.get("worker_peak_rss_mb") is not None:
            memory += f" + {row['worker_peak_rss_mb']:,.0f} MB per worker"
        lines.append(f"| {row['users']:,} | {engine} | {row['ratings']:,} | {row['job_seconds']:.0f} s | "
                     f"{row['users_per_s']:,.0f} "
                     f"| {row['job_over_floor']:.1f}x | {memory} | "
                     f"{row['floor_peak_rss_mb']:,.0f} MB | "
                     f"{row['shard_bytes_per_user']:,.0f} | {row['bank_bytes_per_user']:,.0f} |")
    lines += ["", "Peak memory is the job process's whole resident set (torch, the model, the index of the users "
                  "done so far). Where it equals the floor's (a pass that keeps nothing per user but an 8-byte hash "
                  "of each user seen), it is set by reading the log (written in parts of 100,000 users), not by the "
                  "users adapted. 'Flat' is judged as at most 1.25x from 100k to 1M users."]
    if ray_rows:
        started = ", ".join(f"{row['startup_seconds']:.1f} s at {row['users']:,} users" for row in ray_rows)
        same = ", ".join(f"{'yes' if row.get('same_bank') else 'NO'} at {row['users']:,}" for row in ray_rows)
        lines += ["", f"The ray rows run `adapt-users --engine ray --workers {args.ray_workers}` on a Ray instance the "
                      "job starts on this machine, sharing its CPUs with the driver; the job's time includes starting "
                      f"Ray and the workers ({started}). Their peak memory is the driver's, then each worker's. Bank "
                      f"identical to the local engine's (shard and top-N bytes, index but for `adapted_at`): {same}."]
    first, last = (local or rows)[0], (local or rows)[-1]
    if "former_users_per_s" in first:
        lines += ["", f"Former path (`adapt_many`, then `UserModel.recommend(n=10)` per user, one process, first "
                      f"{args.former_users:,} users of the {first['users']:,} log): {first['former_users_per_s']:,.0f} "
                      f"users/s, against {first['users_per_s']:,.0f} for the job: "
                      f"{first['users_per_s'] / first['former_users_per_s']:.0f}x."]
    if "p50_ms" in last:
        lines += ["", f"Reading one user back from the {last['users']:,}-user bank (`StateBank.get`, 2,000 random "
                      f"users, index already open): p50 {last['p50_ms']:.2f} ms, p99 {last['p99_ms']:.2f} ms. "
                      f"`verify` over the whole bank: {'ok' if last.get('verified') else 'FAILED'}."]
    lines += ["", "## Goals of the issue, measured", "",
              "| goal | measured | verdict |", "|---|---|---|"]
    big = [row for row in local if row["users"] >= 1_000_000]
    if big:
        row = big[0]
        lines.append("| 1M users x 20 ratings, 20k items, adapted + top-10 in <= 10 min | "
                     f"{row['job_seconds'] / 60:.1f} "
                     f"min | {'met' if row['job_seconds'] <= 600 else 'missed'} |")
        lines.append(f"| peak RSS <= 4 GB | {row['peak_rss_mb']:,.0f} MB | "
                     f"{'met' if row['peak_rss_mb'] <= 4096 else 'missed'} |")
    mid = [row for row in local if row["users"] == 100_000]
    if big and mid:
        ratio = big[0]["peak_rss_mb"] / mid[0]["peak_rss_mb"]
        lines.append(f"| peak memory flat in users (100k vs 1M) | {mid[0]['peak_rss_mb']:,.0f} vs "
                     f"{big[0]['peak_rss_mb']:,.0f} MB ({ratio:.2f}x) | {'met' if ratio < 1.25 else 'missed'} |")
    if ray_rows:
        same = all(row.get("same_bank") for row in ray_rows)
        sizes = ", ".join(f"{row['users']:,}" for row in ray_rows)
        lines.append(f"| Ray ({args.ray_workers} local workers) bank identical to local | "
                     f"{'identical' if same else 'DIFFERENT'} at {sizes} users | {'met' if same else 'missed'} |")
    if "p99_ms" in last:
        lines.append(f"| bank lookup p99 < 5 ms at {last['users']:,} users | {last['p99_ms']:.2f} ms | "
                     f"{'met' if last['p99_ms'] < 5 else 'missed'} |")
    lines.append("")
    write_report_files(args.out, lines, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
