"""``adapt_tasks_job``: adapt a text classifier to every task of a frame of (task, text, label), into a bank.

Many domains or customers, each with its own few labelled texts: the frame (parquet, csv or a
folder of parquet files; each task's rows together) is read a chunk of tasks at a time, each chunk
adapted in one batched ``SentimentClassifier.adapt_many`` call, and each task's adapted state (and
its classes) committed to the bank. A task that cannot be adapted (an empty or missing text, a
missing label, a single class) is skipped with its reason, and the rest of the chunk goes on.

>>> import tempfile, polars as pl
>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> from personalize.sentiment import SentimentClassifier
>>> classifier = SentimentClassifier.build(create_learner("protonet", tiny_encoder()), ["bad", "good"], [0, 1])
>>> folder = tempfile.mkdtemp()
>>> frame = pl.DataFrame({"task": ["shoes", "shoes", "bags", "bags", "hats"],
...                       "text": ["love", "hate", "great", "awful", "nice"], "label": [1, 0, 1, 0, 1]})
>>> frame.write_parquet(folder + "/tasks.parquet")
>>> summary = adapt_tasks_job(folder + "/tasks.parquet", classifier, folder + "/bank", progress=False)
>>> summary.adapted, summary.skipped
(2, {'fewer than two classes': 1})
>>> from personalize.bank import StateBank
>>> StateBank(folder + "/bank", model=classifier).get("shoes").predict(["love"])
[1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from personalize.bank.codecs import ClassifierStates
from personalize.errors import require
from personalize.jobs.engines import make_engine
from personalize.jobs.reading import scan_log
from personalize.jobs.runner import Adapted, JobSummary, Prepared, model_location, resolve_model, run_over_log

SKIP_TEXT = "a missing or empty text"
SKIP_LABEL = "a missing label"
SKIP_ONE_CLASS = "fewer than two classes"


@dataclass(frozen=True)
class TaskColumns:
    """Column names of a frame of text tasks."""

    task: str = "task"
    text: str = "text"
    label: str = "label"


class TaskChunks:
    """Checks and adapts chunks of a task frame for one classifier (see :func:`adapt_tasks_job`)."""

    key = "task"

    def __init__(self, classifier: Any, columns: TaskColumns) -> None:
        self.classifier = classifier
        self.columns = columns
        self.codec = ClassifierStates(classifier)

    def prepare(self, chunk: Any) -> Prepared:
        import polars as pl

        frame = chunk.rename({self.columns.task: "task", self.columns.text: "text", self.columns.label: "label"})
        frame = frame.with_columns(pl.col("text").cast(pl.String, strict=False))
        flags = frame.group_by("task", maintain_order=True).agg(
            (pl.col("text").is_null() | (pl.col("text").str.strip_chars() == "")).any().alias(SKIP_TEXT),
            pl.col("label").is_null().any().alias(SKIP_LABEL),
            (pl.col("label").drop_nulls().n_unique() < 2).alias(SKIP_ONE_CLASS),
            pl.col("text"), pl.col("label"))
        skipped: dict[str, list[Hashable]] = {}
        bad = pl.lit(False)
        for reason in (SKIP_TEXT, SKIP_LABEL, SKIP_ONE_CLASS):
            tasks = flags.filter(pl.col(reason) & ~bad)["task"].to_list()
            if tasks:
                skipped[reason] = tasks
            bad = bad | pl.col(reason)
        good = flags.filter(~bad)
        texts, labels = good["text"].to_list(), good["label"].to_list()
        hashes = np.array([_task_hash(t, y) for t, y in zip(texts, labels)], dtype=np.uint64)
        return Prepared(ids=good["task"].to_list(), hashes=hashes, counts=np.array([len(t) for t in texts]),
                        payload=list(zip(texts, labels)), skipped=skipped)

    def adapt(self, prepared: Prepared, keep: np.ndarray) -> Adapted:
        models = self.classifier.adapt_many([prepared.payload[i] for i in np.flatnonzero(keep)])
        groups, meta = self.codec.encode(models)
        return Adapted(groups=groups, meta=meta)


def _task_hash(texts: list[str], labels: list[Any]) -> int:
    """An order-independent 64-bit hash of a task's (text, label) rows."""
    total = 0
    for text, label in zip(texts, labels):
        digest = hashlib.blake2b(f"{type(label).__name__}:{label}\0{text}".encode(), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "little")) % (1 << 64)
    return (total ^ len(texts)) % (1 << 64)


def adapt_tasks_job(frame: str | Path, model: Any, out: str | Path, *, batch_tasks: int = 256,
                    columns: TaskColumns | None = None, progress: bool = True,
                    model_source: str | None = None, engine: str = "local", address: str | None = None,
                    workers: int | None = None) -> JobSummary:
    """Adapt ``model`` (a SentimentClassifier, or a shipped name or saved folder) to every task of
    ``frame`` into the bank at ``out``. Rerunning finishes an interrupted run and re-adapts only the
    tasks whose rows changed. ``engine="ray"``: on Ray actors, as for
    :func:`~personalize.jobs.users.adapt_users`."""
    from personalize.sentiment import SentimentClassifier

    require(isinstance(batch_tasks, int) and batch_tasks >= 1, f"batch_tasks must be an int >= 1, got {batch_tasks!r}")
    runner = make_engine(engine, address=address, workers=workers)
    columns = columns or TaskColumns()
    location = model_location(model)
    model, source = resolve_model(model, SentimentClassifier, model_source,
                                  "adapt-tasks needs one (for rating logs use adapt-users)")
    scan = scan_log(frame, [columns.task, columns.text, columns.label])
    adapter = TaskChunks(model, columns)
    return run_over_log(adapter, scan, columns.task, out, kind="text-classifier", source=source, location=location,
                        build=partial(TaskChunks, columns=columns), keys_per_chunk=batch_tasks, engine=runner,
                        progress=progress, noun="tasks")

__all__ = ["TaskChunks", "TaskColumns", "adapt_tasks_job"]
