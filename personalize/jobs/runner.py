"""The loop every batch job shares: stream chunks, skip what the bank already holds, adapt, commit.

A job is a :class:`ChunkAdapter` (what one chunk of a log becomes) run by :func:`run_job`: each chunk
of whole users (or tasks) is *prepared* (checked, each user's input hashed), the users whose hash the
bank already holds are dropped (a rerun after a crash, or an unchanged user in an incremental run),
the rest are adapted in one batched call and committed as one bank part. Killing the job at any
moment loses at most the chunks in flight; running the same command again finishes the work, each
user adapted into the bank exactly once.

Where the adapt step runs is the *engine*'s business (:mod:`personalize.jobs.engines`: in this
process, or on Ray actors); preparing, filtering and committing always happen here, in chunk order,
so every engine writes the same bank.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Hashable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from personalize.bank.store import StateBank, StateGroup
from personalize.jobs.engines import Engine, EngineStats, LocalEngine, Recipe, Work

if TYPE_CHECKING:
    import polars as pl

SKIP_EXAMPLES = 5
"""Ids kept per skip reason for the summary."""


@dataclass
class Prepared:
    """One checked chunk: the users to adapt, their input hashes and counts, the data to adapt them
    from (``payload``, the adapter's own), and the users skipped with a reason."""

    ids: list[Hashable]
    hashes: np.ndarray
    counts: np.ndarray
    payload: Any
    skipped: dict[str, list[Hashable]] = field(default_factory=dict)


@dataclass
class Adapted:
    """What one chunk's adaptation gives the bank: groups with the positions of their users, meta, top-N."""

    groups: list[tuple[StateGroup, list[int]]]
    meta: list[str | None] | None = None
    top: pl.DataFrame | None = None


class ChunkAdapter(Protocol):
    """What one job does with a chunk: check and hash it (in the driver), adapt its kept users (wherever
    the engine runs it: it must be picklable to go to a Ray worker with its result)."""

    key: str
    codec: Any

    def prepare(self, chunk: pl.DataFrame) -> Prepared: ...

    def adapt(self, prepared: Prepared, keep: np.ndarray) -> Adapted: ...


@dataclass
class JobSummary:
    """What a run did: users adapted now, already in the bank, skipped (by reason), time and memory."""

    adapted: int = 0
    unchanged: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[Hashable]] = field(default_factory=dict)
    parts: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    bank_users: int = 0
    dropped_rows: int = 0
    """Rows left out because the model does not know their item (the rest of the user is adapted)."""
    engine: EngineStats = field(default_factory=EngineStats)
    """Where the adapt step ran (local, or Ray with how many workers, their start-up and peak memory)."""

    def lines(self, noun: str = "users") -> list[str]:
        rate = self.adapted / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.adapted:,} {noun} adapted in {self.seconds:.1f} s ({rate:,.0f} {noun}/s), "
                 f"{self.unchanged:,} already in the bank unchanged, {self.parts} part(s) written; "
                 f"the bank holds {self.bank_users:,} {noun}; peak memory {self.peak_rss_mb:,.0f} MB"]
        if self.engine.name != "local" and not self.engine.workers:
            lines.append(f"nothing to adapt: no {self.engine.name} worker was started")
        elif self.engine.name != "local":
            worker = self.engine.worker_peak_rss_mb
            lines.append(f"adapted on {self.engine.name}: {self.engine.workers} worker(s), started in "
                         f"{self.engine.startup_seconds:.1f} s"
                         + ("" if worker is None else f", peak memory {worker:,.0f} MB per worker"))
        if self.dropped_rows:
            lines.append(f"left out {self.dropped_rows:,} row(s) of items the model does not know")
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"skipped {count:,} {noun}: {reason} (e.g. {self.skipped_examples[reason]})")
        return lines


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_job(adapter: ChunkAdapter, chunks: Iterator[pl.DataFrame], bank: StateBank, *,
            engine: Engine | None = None, recipe: Recipe | None = None, total: int | None = None,
            progress: bool = True, noun: str = "users") -> JobSummary:
    """Adapt every chunk into ``bank`` on ``engine`` (default: in this process); returns the summary.
    ``recipe`` tells a distributed engine how its workers rebuild ``adapter``."""
    from tqdm.auto import tqdm

    engine = engine or LocalEngine()
    started = time.perf_counter()
    summary = JobSummary()
    held = bank.index().select("id", "input_hash")
    bar = tqdm(total=total, disable=not progress, unit=noun[:-1] if noun.endswith("s") else noun,
               desc="adapting", smoothing=0.1)

    def work() -> Iterator[Work]:
        for chunk in chunks:
            prepared = adapter.prepare(chunk)
            for reason, users in prepared.skipped.items():
                summary.skipped[reason] = summary.skipped.get(reason, 0) + len(users)
                examples = summary.skipped_examples.setdefault(reason, [])
                examples += users[: SKIP_EXAMPLES - len(examples)]
            keep = _not_held(prepared, held)
            summary.unchanged += int((~keep).sum())
            yield Work(prepared, keep)

    with closing(engine.adapt(adapter, work(), recipe)) as results:
        for item, adapted in results:
            prepared = item.prepared
            if adapted is not None:
                flat = [position for _, positions in adapted.groups for position in positions]
                order = np.flatnonzero(item.keep)[flat]
                bank.write_part([prepared.ids[i] for i in order], [group for group, _ in adapted.groups],
                                input_hashes=prepared.hashes[order], counts=prepared.counts[order],
                                meta=None if adapted.meta is None else [adapted.meta[p] for p in flat],
                                top=adapted.top)
                summary.adapted += len(order)
                summary.parts += 1
            bar.update(len(prepared.ids) + sum(len(users) for users in prepared.skipped.values()))
            bar.set_postfix(adapted=summary.adapted, skipped=sum(summary.skipped.values()))
    bar.close()
    bank.drop_superseded_top()
    summary.engine = engine.stats
    summary.seconds = time.perf_counter() - started
    summary.peak_rss_mb = peak_rss_mb()
    summary.bank_users = len(StateBank(bank.path))
    return summary


def run_over_log(adapter: Any, scan: pl.LazyFrame, key: str, out: Any, *, kind: str, source: str,
                 location: str | None, build: Any, keys_per_chunk: int, engine: Engine, progress: bool,
                 noun: str, extra: dict[str, Any] | None = None) -> JobSummary:
    """Open (or create) the bank at ``out`` for ``adapter``'s model and run the job over the log ``scan``,
    ``keys_per_chunk`` of its ``key`` values at a time: the part every batch job shares. ``build`` and
    ``location`` tell Ray workers how to rebuild the adapter (see :class:`Recipe`)."""
    from personalize.jobs.reading import count_keys, grouped_chunks

    id_dtype = "Int64" if scan.collect_schema()[key].is_integer() else "String"
    bank = StateBank.open_for_writing(out, kind=kind, model_id=adapter.codec.model_id(), model_source=source,
                                      id_dtype=id_dtype, extra=extra)
    total = count_keys(scan, key) if progress else None
    chunks = grouped_chunks(scan, key, keys_per_chunk=keys_per_chunk)
    recipe = Recipe(build=build, model=adapter.codec.model, model_id=bank.model_id, source=location)
    return run_job(adapter, chunks, bank, engine=engine, recipe=recipe, total=total, progress=progress, noun=noun)


def _not_held(prepared: Prepared, held: pl.DataFrame) -> np.ndarray:
    """Which of the chunk's users to adapt: those the bank does not hold with the same input hash."""
    import polars as pl

    keep = np.ones(len(prepared.ids), dtype=bool)
    if held.height and prepared.ids:
        mine = pl.DataFrame({"id": pl.Series(prepared.ids, dtype=held["id"].dtype),
                             "input_hash": pl.Series(prepared.hashes, dtype=pl.UInt64),
                             "position": np.arange(len(prepared.ids))})
        same = mine.join(held, on=["id", "input_hash"], how="semi")["position"].to_numpy()
        keep[same] = False
    return keep


def model_location(model: Any) -> str | None:
    """Where a worker loads ``model`` from: a shipped name as given, a folder as an absolute path;
    None for a model object (it has to be shipped)."""
    from pathlib import Path

    if not isinstance(model, str | Path):
        return None
    return str(Path(model).resolve()) if Path(model).is_dir() else str(model)


def resolve_model(model: Any, expected: type, source: str | None, refusal: str) -> tuple[Any, str]:
    """``model`` itself when it is an ``expected`` instance, else loaded by shipped name or folder;
    with the source string a bank records (an absolute path for a folder)."""
    from personalize.errors import ConfigError, require
    from personalize.loading import load

    if isinstance(model, expected):
        return model, source or f"in-memory {expected.__name__}"
    source = source or model_location(model) or str(model)
    loaded = load(model)
    require(isinstance(loaded, expected), f"{source} is not a {expected.__name__}; {refusal}", ConfigError)
    return loaded, source


def input_hashes(keys: np.ndarray, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """One order-independent 64-bit hash per user of (key, value) rows; user ``u`` owns rows
    ``starts[u]:starts[u+1]`` (``starts`` ends with the row count). Independent of library versions.

    >>> starts = np.array([0, 2, 4])
    >>> a = input_hashes(np.array([3, 5, 5, 3]), np.array([4.0, 1.0, 1.0, 4.0]), starts)
    >>> bool(a[0] == a[1]), bool(input_hashes(np.array([3]), np.array([5.0]), np.array([0, 1]))[0] != a[0])
    (True, True)
    """
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    mixed = _splitmix64((np.asarray(keys).astype(np.int64).astype(np.uint64) << np.uint64(32)) ^ bits)
    sums = np.zeros(len(starts) - 1, dtype=np.uint64)
    lengths = np.diff(starts)
    nonempty = lengths > 0
    if nonempty.any():
        with np.errstate(over="ignore"):
            sums[nonempty] = np.add.reduceat(mixed, starts[:-1][nonempty])
    return _splitmix64(sums ^ lengths.astype(np.uint64))


def _splitmix64(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


__all__ = ["Adapted", "ChunkAdapter", "JobSummary", "Prepared", "input_hashes", "model_location", "resolve_model",
           "run_job"]
