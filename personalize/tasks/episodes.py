"""Classification tasks: N-way K-shot episodes drawn from labelled texts grouped by task.

A :class:`TextTaskPool` indexes a frame of (task key, text, label) rows once: for every task and
class it keeps the row numbers of its examples. Sampling an episode is then index arithmetic: it
picks row numbers, and the texts are gathered only when someone asks for them.

>>> import polars as pl
>>> frame = pl.DataFrame({
...     "task": ["shoes"] * 6 + ["bags"] * 6,
...     "text": [f"review {i}" for i in range(12)],
...     "label": ["neg", "pos"] * 6,
... })
>>> pool = TextTaskPool(frame)
>>> pool.tasks, pool.classes
(('bags', 'shoes'), ('neg', 'pos'))
>>> episode = pool.sample("shoes", ways=2, shots=1, query_per_class=2, rng=0)
>>> episode.support_labels.tolist(), episode.query_labels.tolist()
([0, 1], [0, 0, 1, 1])
>>> len(episode.support_texts), len(episode.query_texts)
(2, 4)
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from personalize.errors import EpisodeError, SchemaError, require
from personalize.frames import as_polars, require_columns

if TYPE_CHECKING:
    import polars as pl

Rng = np.random.Generator | int


def as_rng(rng: Rng) -> np.random.Generator:
    """Accept a seed or a Generator, so that every sampler can be called either way."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def keyed_rng(seed: int, key: Hashable) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (an int, or any value via its text).

    Sampling each task or episode from its own keyed generator makes it independent of which other
    tasks were sampled before: user 7's query set is the same at every K and in every subset.

    >>> int(keyed_rng(0, "user-7").integers(100)) == int(keyed_rng(0, "user-7").integers(100))
    True
    """
    if isinstance(key, (int, np.integer)) and key >= 0:
        return np.random.default_rng([seed, int(key)])
    return np.random.default_rng([seed, zlib.crc32(str(key).encode("utf-8"))])


@dataclass(frozen=True)
class Episode:
    """One classification task instance: a labelled support set and a labelled query set.

    Rows are positions in the pool's text column; labels are class ids ``0..ways-1`` whose names are
    ``classes[label]``. Support and query never share a row.
    """

    task: Hashable
    classes: tuple[Hashable, ...]
    support_rows: np.ndarray
    support_labels: np.ndarray
    query_rows: np.ndarray
    query_labels: np.ndarray
    pool: TextTaskPool = field(repr=False, compare=False)

    @property
    def ways(self) -> int:
        return len(self.classes)

    @property
    def support_texts(self) -> list[str]:
        return self.pool.texts_at(self.support_rows)

    @property
    def query_texts(self) -> list[str]:
        return self.pool.texts_at(self.query_rows)


class TextTaskPool:
    """Labelled texts indexed by (task, class) for cheap episode sampling.

    Args:
        frame: a polars (or pandas) frame with one row per labelled text.
        task_column, text_column, label_column: which columns hold the task key, the text and the
            label. Rows with a null in any of them are dropped.
        classes: the label values in class-id order. Defaults to the sorted distinct labels; a
            label outside ``classes`` is an error.
    """

    def __init__(
        self,
        frame: Any,
        *,
        task_column: str = "task",
        text_column: str = "text",
        label_column: str = "label",
        classes: Sequence[Hashable] | None = None,
    ) -> None:
        import polars as pl

        frame = as_polars(frame)
        columns = [task_column, text_column, label_column]
        require_columns(frame, columns, what="labelled text")
        frame = frame.select(columns).drop_nulls()
        if frame.schema[text_column] != pl.String:
            raise SchemaError(f"text column {text_column!r} must hold strings, got {frame.schema[text_column]}")
        found = set(frame[label_column].unique().to_list())
        classes = tuple(classes) if classes is not None else tuple(sorted(found))
        unknown = found - set(classes)
        if unknown:
            raise SchemaError(f"labels {sorted(map(str, unknown))} are not among the classes {list(classes)}")
        grouped = (
            frame.with_row_index("row")
            .group_by(task_column, label_column)
            .agg(pl.col("row"))
            .iter_rows()
        )
        index: dict[Hashable, dict[Hashable, np.ndarray]] = {}
        for task, label, rows in grouped:
            index.setdefault(task, {})[label] = np.asarray(rows, dtype=np.int64)
        self._texts: pl.Series = frame[text_column]
        self._index = index
        self.classes: tuple[Hashable, ...] = classes

    @property
    def tasks(self) -> tuple[Hashable, ...]:
        """Task keys, sorted."""
        return tuple(sorted(self._index, key=str))

    def __len__(self) -> int:
        """Number of labelled texts across all tasks of this pool."""
        return sum(len(rows) for by_class in self._index.values() for rows in by_class.values())

    def class_counts(self, task: Hashable) -> dict[Hashable, int]:
        """Number of examples of each class in ``task`` (zero for classes it lacks)."""
        by_class = self._task(task)
        return {label: len(by_class.get(label, ())) for label in self.classes}

    def texts_at(self, rows: np.ndarray) -> list[str]:
        """The texts at the given row positions."""
        return self._texts.gather(rows).to_list()

    def shares_texts_with(self, other: TextTaskPool) -> bool:
        """Whether row numbers mean the same texts in both pools (one was restricted from the other)."""
        return self._texts is other._texts

    def restrict(self, tasks: Iterable[Hashable]) -> TextTaskPool:
        """A pool over only ``tasks``, sharing this pool's text column (nothing is copied)."""
        tasks = list(tasks)
        missing = [task for task in tasks if task not in self._index]
        require(not missing, f"tasks {missing} are not in this pool; it has {list(self.tasks)}", SchemaError)
        view = object.__new__(TextTaskPool)
        view._texts, view.classes = self._texts, self.classes
        view._index = {task: self._index[task] for task in tasks}
        return view

    def sample(
        self,
        task: Hashable,
        *,
        ways: int,
        shots: int,
        query_per_class: int,
        rng: Rng,
        shuffle_classes: bool = False,
    ) -> Episode:
        """Draw an N-way K-shot episode from ``task`` with a balanced query set.

        Exactly ``shots`` support and ``query_per_class`` query examples per class, no row in both.
        The ``ways`` classes are drawn among those with enough examples and keep the pool's class
        order unless ``shuffle_classes`` (which randomises which class gets which id).
        """
        require(ways >= 1, f"ways must be >= 1, got {ways}")
        require(shots >= 1, f"shots must be >= 1, got {shots}")
        require(query_per_class >= 0, f"query_per_class must be >= 0, got {query_per_class}")
        rng = as_rng(rng)
        needed = shots + query_per_class
        by_class = self._task(task)
        eligible = [label for label in self.classes if len(by_class.get(label, ())) >= needed]
        if len(eligible) < ways:
            counts = ", ".join(f"{label}: {n}" for label, n in self.class_counts(task).items())
            raise EpisodeError(
                f"task {task!r} cannot supply a {ways}-way {shots}-shot episode with {query_per_class} "
                f"queries per class: only {len(eligible)} classes have >= {needed} examples ({counts})"
            )
        chosen = rng.choice(len(eligible), size=ways, replace=False)
        order = chosen if shuffle_classes else np.sort(chosen)
        classes = tuple(eligible[i] for i in order)
        support, query = [], []
        for label in classes:
            rows = rng.choice(by_class[label], size=needed, replace=False)
            support.append(rows[:shots])
            query.append(rows[shots:])
        return Episode(
            task=task,
            classes=classes,
            support_rows=np.concatenate(support),
            support_labels=np.repeat(np.arange(ways), shots),
            query_rows=np.concatenate(query),
            query_labels=np.repeat(np.arange(ways), query_per_class),
            pool=self,
        )

    def _task(self, task: Hashable) -> dict[Hashable, np.ndarray]:
        if task not in self._index:
            raise EpisodeError(f"unknown task {task!r}; this pool has {list(self.tasks)}")
        return self._index[task]
