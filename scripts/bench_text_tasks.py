"""Text tasks at scale: adapting thousands of small tasks, against the floor of reading their texts once.

Each task is 8 negative and 8 positive texts of one source, drawn with ``--seed``: clothing reviews
(long: most fill the 64-token limit) and VADER's tweets, product and editorial snippets (short and
of mixed length), alternately. ``personalize adapt-tasks`` adapts every task with each of
``--models`` into a bank, in a fresh process: by default the shipped ``sentiment`` (Meta-SGD: one
gradient step through the adapted layers) and its prototype companion (``sentiment/multiclass``:
one pass of the encoder, no gradient). Side by side in the same run, in fresh processes of their own:

- the *floor*: one forward pass of the same encoder over the same texts (``Encoder.embed``, batched
  by length), which any method that reads the support pays; *rate / floor rate* is the job's tasks
  per second over the floor's, the issue's goal being >= 0.7;
- *unpacked*: the same job with the engine's packing by length turned off (every chunk padded to
  its longest text, every distinct text of a batch in one forward), at the smallest size only.

Writes docs/scale-text.md and docs/scale-text.json; one command regenerates them::

    python scripts/bench_text_tasks.py                       # 1,000 and 10,000 tasks (about 25 minutes on 2 cores)
    python scripts/bench_text_tasks.py --tasks 200 --out /tmp/text.md   # a quick try
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import torch

from personalize import data
from personalize.bench_runs import read_report_numbers, run_fresh, write_report_files
from personalize.provenance import cpu_flags

ROOT = Path(__file__).resolve().parent.parent
PER_CLASS = 8
DEFAULT_MODELS = ("sentiment", "personalize/pretrained/sentiment/multiclass")

CHILD = """
import json, sys, time
from dataclasses import asdict
import polars as pl
import personalize as pz
from personalize.jobs.runner import peak_rss_mb
from personalize.jobs.tasks import adapt_tasks_job
frame, model, out, mode = sys.argv[1:5]
if mode == "floor":
    texts = pl.read_parquet(frame)["text"].to_list()
    encoder = pz.load(model).encoder
    started = time.perf_counter()
    encoder.embed(texts)
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}))
else:
    if mode == "unpacked":  # the engine as it was before packing by length
        import torch
        from personalize.engine import inner_loop
        from personalize.learners import base
        def one_padded_chunk_after_another(batch, budget):
            size = max(1, budget // (batch.input_ids.shape[1] * batch.input_ids.shape[2]))
            return [(torch.arange(start, min(start + size, batch.num_tasks)), batch.select(slice(start, start + size)))
                    for start in range(0, batch.num_tasks, size)]
        inner_loop.packed_tasks = one_padded_chunk_after_another
        base.length_groups = lambda lengths, budget: [torch.arange(len(lengths))]
    summary = adapt_tasks_job(frame, model, out, progress=False)
    print(json.dumps(asdict(summary), default=str))
"""


def sources() -> list[pl.DataFrame]:
    """The labelled texts each task is drawn from: clothing reviews, then each VADER domain."""
    reviews = data.load("clothing-reviews").tables["reviews"].filter(
        pl.col("rating") != 3, pl.col("text").str.strip_chars().str.len_chars() > 0).select(
        "text", label=pl.when(pl.col("rating") >= 4).then(pl.lit("positive")).otherwise(pl.lit("negative")))
    snippets = data.load("vader-snippets").tables["snippets"].filter(
        pl.col("label").is_in(["negative", "positive"]), pl.col("text").str.strip_chars().str.len_chars() > 0)
    return [reviews] + [part.select("text", "label") for _, part in snippets.group_by("domain", maintain_order=True)]


def task_frame(count: int, seed: int) -> pl.DataFrame:
    """``count`` tasks of 8 negative and 8 positive texts; task i draws from source i mod 2 (VADER's
    domains take turns), so half the tasks are long reviews and half short snippets."""
    rng = np.random.default_rng(seed)
    pools = sources()
    by_class = [{label: part["text"].to_list() for (label,), part in pool.group_by("label")} for pool in pools]
    rows = []
    for task in range(count):
        pool = by_class[0] if task % 2 == 0 else by_class[1 + (task // 2) % (len(pools) - 1)]
        for label in ("negative", "positive"):
            for index in rng.choice(len(pool[label]), size=PER_CLASS, replace=False):
                rows.append((f"task-{task:06d}", pool[label][index], label))
    return pl.DataFrame(rows, schema={"task": pl.Utf8, "text": pl.Utf8, "label": pl.Utf8}, orient="row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="1000,10000", help="comma-separated numbers of tasks (default 1000,10000)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated shipped names or classifier folders (default: the shipped sentiment "
                             "model and its prototype companion)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "scale-text.md")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the .json beside --out, measuring nothing")
    args = parser.parse_args()
    if args.report_only:
        saved = read_report_numbers(args.out)
        write_report(args, saved["rows"], saved["machine"])
        return
    sizes = [int(size) for size in args.tasks.split(",")]
    models = args.models.split(",")
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, CPU flags: {cpu_flags()}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-text-") as scratch:
        for size in sizes:
            frame_path = Path(scratch) / f"tasks-{size}.parquet"
            frame = task_frame(size, args.seed)
            frame.write_parquet(frame_path)
            floor = run_fresh(CHILD, str(frame_path), models[0], "", "floor")  # every model reads with the same encoder
            for number, model in enumerate(models):
                modes = ("packed", "unpacked") if size == sizes[0] and number == 0 else ("packed",)
                for mode in modes:
                    bank = Path(scratch) / f"bank-{size}-{number}-{mode}"
                    job = run_fresh(CHILD, str(frame_path), model, str(bank), mode)
                    row = {"tasks": size, "texts": frame.height, "model": model, "mode": mode,
                           "adapted": job["adapted"], "job_seconds": job["seconds"],
                           "tasks_per_s": job["adapted"] / job["seconds"], "floor_seconds": floor["seconds"],
                           "rate_over_floor": floor["seconds"] / job["seconds"], "peak_rss_mb": job["peak_rss_mb"],
                           "skipped": job["skipped"]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    write_report(args, rows, machine)


def short(model: str) -> str:
    """A model's name in the report: a shipped name, or a folder relative to the shipped models' folder."""
    return model.removeprefix("personalize/pretrained/")


def write_report(args: argparse.Namespace, rows: list[dict], machine: str) -> None:
    command = "python scripts/bench_text_tasks.py"
    command += "" if args.tasks == "1000,10000" else f" --tasks {args.tasks}"
    command += "" if args.models == ",".join(DEFAULT_MODELS) else f" --models {args.models}"
    lines = [
        "# Text tasks at scale", "",
        f"Generated by `{command}` (seed {args.seed}) on {machine}. Each task is {PER_CLASS} negative and "
        f"{PER_CLASS} positive texts of one source (clothing reviews for even tasks, VADER's tweets, product and "
        "editorial snippets in turn for odd ones), adapted with each model by `personalize adapt-tasks` in a "
        "fresh process into a bank: `sentiment` is the shipped model (Meta-SGD, one gradient step through the "
        "adapted layers 2-5), `sentiment/multiclass` its prototype companion (one pass of the encoder).", "",
        "The *floor* is one forward pass of the same encoder over the same texts (`Encoder.embed`, batched by "
        "length), timed in a fresh process in the same run; *rate / floor rate* is the job's tasks per second "
        "over the floor's (1.0 would be adapting at the cost of reading each text once). *unpacked* is the same "
        "job with the engine's packing by length turned off (`personalize/engine/packing.py`).", "",
        "| tasks | texts | model | engine | job | tasks/s | floor | rate / floor rate | peak memory |",
        "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['tasks']:,} | {row['texts']:,} | {short(row['model'])} | {row['mode']} | "
                     f"{row['job_seconds']:.1f} s | "
                     f"{row['tasks_per_s']:,.1f} | {row['floor_seconds']:.1f} s | {row['rate_over_floor']:.2f}x | "
                     f"{row['peak_rss_mb']:,.0f} MB |")
    packed = {row["tasks"]: row for row in rows if row["mode"] == "packed" and row["model"] == rows[0]["model"]}
    unpacked = [row for row in rows if row["mode"] == "unpacked"]
    if unpacked:
        before = unpacked[0]
        after = packed[before["tasks"]]
        lines += ["", f"Packing by length at {before['tasks']:,} tasks: {after['tasks_per_s']:,.1f} tasks/s against "
                      f"{before['tasks_per_s']:,.1f} unpacked ({after['tasks_per_s'] / before['tasks_per_s']:.2f}x)."]
    if unpacked:
        lines += ["", "Packing groups short tasks many to a group within the same token budget, and each task of a "
                      "group carries its own adapter parameters and gradients: that is the higher peak memory of "
                      "the packed rows."]
    lines += ["", "Where the time goes: the shipped model adapts by one gradient step, a forward and a backward "
                  "pass through the four adapted layers of six, in float32 (training arithmetic on CPU: "
                  "`Encoder.compute_dtype`), while the floor and the layers below the adapters run in the "
                  "encoder's inference precision (bfloat16 on CPUs with native bfloat16). The prototype "
                  "companion reads each support text once and needs no gradient, so it runs at the floor's rate; "
                  "above it because each batch of distinct texts is deduplicated and packed by length."]
    lines += ["", "## Goal of the issue, measured", "",
              "The issue states the goal for 10,000 tasks. Only the sizes in the table were run; tasks are "
              "adapted a chunk of 256 at a time, so the rate is expected, not measured, to hold at 10,000 "
              "(`python scripts/bench_text_tasks.py` runs 1,000 and 10,000).", "",
              "| goal | measured | verdict |", "|---|---|---|"]
    for row in (row for row in rows if row["mode"] == "packed"):
        met = row["rate_over_floor"] >= 0.7
        lines.append(f"| text tasks of 16 adapted with `{short(row['model'])}` at >= 0.7x the rate of one forward "
                     f"pass ({row['tasks']:,} tasks) | {row['rate_over_floor']:.2f}x | {'met' if met else 'missed'} |")
    lines.append("")
    write_report_files(args.out, lines, {"machine": machine, "rows": rows})


if __name__ == "__main__":
    main()
