"""Reading a large log lazily, a chunk of whole users (or tasks) at a time.

A batch job never holds the whole log: :func:`scan_log` opens a parquet or csv file (or a folder or
glob of parquet files) as a polars LazyFrame, and :func:`grouped_chunks` streams it in row batches
and cuts them at key boundaries, so each chunk holds every row of its users and no user is split
between chunks. The log must keep each user's rows together (sorted or grouped by user); a user
whose rows come back later is refused with the row where it happened.

>>> import polars as pl
>>> frame = pl.DataFrame({"user_id": [1, 1, 2, 3, 3, 3], "item_id": [5, 6, 5, 5, 6, 7]})
>>> chunks = grouped_chunks(frame.lazy(), "user_id", keys_per_chunk=2, rows_per_batch=2)
>>> [chunk["user_id"].unique(maintain_order=True).to_list() for chunk in chunks]
[[1, 2], [3]]
>>> list(grouped_chunks(pl.DataFrame({"user_id": [1, 2, 1]}).lazy(), "user_id", keys_per_chunk=5))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.SchemaError: the rows of user_id 1 are not together (it comes back at row 2): sort the log by ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from personalize.errors import ConfigError, SchemaError, require

if TYPE_CHECKING:
    import polars as pl

SORT_HINT = "sort the log by {key} first"


def scan_log(path: str | Path, columns: Sequence[str]) -> pl.LazyFrame:
    """A lazy view of the log at ``path`` with ``columns`` selected; refuses a missing file, an
    unknown format and missing columns before any row is read."""
    import polars as pl

    text = str(path)
    is_glob = any(character in text for character in "*?[")
    source = Path(path)
    require(is_glob or source.exists(), f"log {path} does not exist", SchemaError)
    if source.is_dir():
        require(any(source.glob("*.parquet")), f"folder {path} holds no .parquet files", SchemaError)
        scan = pl.scan_parquet(source / "*.parquet")
    elif text.endswith(".parquet"):
        scan = pl.scan_parquet(text)
    elif text.endswith((".csv", ".tsv")):
        scan = pl.scan_csv(text, separator="\t" if text.endswith(".tsv") else ",")
    else:
        raise ConfigError(f"log {path} must be a .parquet, .csv or .tsv file or a folder of .parquet files")
    try:
        schema = scan.collect_schema()
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as error:
        raise SchemaError(f"cannot read log {path}: {str(error).splitlines()[0]}") from error
    missing = [name for name in columns if name not in schema]
    require(not missing, f"log {path} lacks column(s) {missing}; it has {list(schema)} (name them with the column "
                         "options)", SchemaError)
    return scan.select(list(columns))


def count_keys(scan: pl.LazyFrame, key: str) -> int:
    """How many distinct ``key`` values the log holds (one streaming pass; for a progress bar's total)."""
    import polars as pl

    return int(scan.select(pl.col(key).n_unique()).collect(engine="streaming").item())


def grouped_chunks(scan: pl.LazyFrame, key: str, *, keys_per_chunk: int,
                   rows_per_batch: int = 250_000) -> Iterator[pl.DataFrame]:
    """Frames of ``keys_per_chunk`` whole keys (the last one may hold fewer), in log order."""
    import polars as pl

    require(keys_per_chunk >= 1, f"keys_per_chunk must be >= 1, got {keys_per_chunk!r}")
    seen = SeenKeys()
    rows_before = 0  # rows of the log before ``pending``
    pending = None
    for batch in scan.collect_batches(chunk_size=rows_per_batch, maintain_order=True):
        if batch.height == 0:
            continue
        pending = batch if pending is None else pl.concat([pending, batch], how="vertical_relaxed")
        runs = _run_ids(pending, key)
        whole = (int(runs[-1]) // keys_per_chunk) * keys_per_chunk  # the last key may go on in the next batch
        if whole == 0:
            continue
        complete = pending.filter(runs < whole)
        _check_together(complete, key, seen, rows_before)
        yield from _slices(complete, key, keys_per_chunk)
        rows_before += complete.height
        pending = pending.filter(runs >= whole)
    if pending is not None and pending.height:
        _check_together(pending, key, seen, rows_before)
        yield from _slices(pending, key, keys_per_chunk)


def _run_ids(frame: pl.DataFrame, key: str) -> pl.Series:
    """0, 0, 1, 1, 1, 2...: which run of equal consecutive keys each row belongs to."""
    import polars as pl

    column = frame[key]
    starts = (column != column.shift(1)).fill_null(True)
    return (starts.cast(pl.Int64).cum_sum() - 1).alias("run")


def _check_together(frame: pl.DataFrame, key: str, seen: SeenKeys, rows_before: int) -> None:
    """Refuse a key that appears in two runs (within ``frame`` or in an earlier chunk)."""
    import polars as pl

    require(frame[key].null_count() == 0, f"the log has rows with no {key} (null) near row {rows_before}; "
                                          "drop or fill them first", SchemaError)
    runs = frame.with_columns(_run_ids(frame, key), pl.int_range(pl.len()).alias("position"))
    firsts = runs.group_by("run", maintain_order=True).agg(pl.col(key).first(), pl.col("position").first())
    repeated = firsts.filter(pl.col(key).is_duplicated())
    if repeated.height:
        user = repeated[key][0]
        again = int(repeated.filter(pl.col(key) == user)["position"][1]) + rows_before
        raise SchemaError(f"the rows of {key} {user!r} are not together (it comes back at row {again}): "
                          + SORT_HINT.format(key=key))
    hashes = firsts[key].hash(seed=0).to_numpy()
    back = np.flatnonzero(seen.contains(hashes))
    if len(back):
        again = int(firsts["position"][int(back[0])]) + rows_before
        raise SchemaError(f"the rows of {key} {firsts[key][int(back[0])]!r} are not together (it comes back at row "
                          f"{again}): " + SORT_HINT.format(key=key))
    seen.add(hashes)


class SeenKeys:
    """The 64-bit hashes of the keys read so far, in 8 bytes each (a Python set of ids takes ten times
    more): one sorted array, plus recent additions merged in whenever they reach a quarter of it.
    Two distinct keys share a hash with odds of about 1 in 10^7 at a billion keys.

    >>> seen = SeenKeys()
    >>> seen.add(np.array([5, 9], dtype=np.uint64))
    >>> seen.contains(np.array([9, 4], dtype=np.uint64)).tolist()
    [True, False]
    """

    def __init__(self) -> None:
        self.merged = np.zeros(0, dtype=np.uint64)
        self.recent: list[np.ndarray] = []
        self.recent_size = 0

    def add(self, hashes: np.ndarray) -> None:
        self.recent.append(np.sort(hashes.astype(np.uint64)))
        self.recent_size += len(hashes)
        if self.recent_size > max(len(self.merged) // 4, 65_536):
            self.merged = np.sort(np.concatenate([self.merged, *self.recent]))
            self.recent, self.recent_size = [], 0

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        for array in (self.merged, *self.recent):
            if len(array):
                at = np.minimum(np.searchsorted(array, hashes), len(array) - 1)
                found |= array[at] == hashes
        return found


def _slices(frame: pl.DataFrame, key: str, keys_per_chunk: int) -> Iterator[pl.DataFrame]:
    runs = _run_ids(frame, key)
    count = int(runs[-1]) + 1
    for start in range(0, count, keys_per_chunk):
        yield frame.filter((runs >= start) & (runs < start + keys_per_chunk))


__all__ = ["SeenKeys", "count_keys", "grouped_chunks", "scan_log"]
