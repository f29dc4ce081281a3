"""A task suite: a suite spec bound to its data, ready to split and to sample episodes from.

Suites shipped with the project live as TOML files in the top-level ``tasks/`` folder and load by
name; any other suite file loads by path. The data table is read lazily from the fetched data sets,
or handed in directly (handy for tests and for users' own frames).

>>> import polars as pl
>>> spec = spec_from_dict({
...     "name": "toy", "kind": "classification", "dataset": "-", "table": "-",
...     "task_column": "shop", "label_column": "stars", "shots": [1], "query_per_class": 1,
...     "classes": [{"name": "negative", "max": 2}, {"name": "positive", "min": 4}],
...     "splits": {"train": ["a"], "test": ["b"]},
... })
>>> frame = pl.DataFrame({"shop": ["a"] * 4 + ["b"] * 4, "text": list("wxyzwxyz"), "stars": [1, 5, 2, 4] * 2})
>>> suite = TaskSuite(spec, frame=frame)
>>> [episode.task for episode in suite.episodes("test", shots=1, n=2, seed=0)]
['b', 'b']
"""

from __future__ import annotations

import tomllib
from collections.abc import Hashable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from personalize.errors import EpisodeError, SuiteError, require
from personalize.files import inside
from personalize.paths import builtin_suites_dir
from personalize.tasks.episodes import Episode, Rng, TextTaskPool, as_rng, keyed_rng
from personalize.tasks.interactions import InteractionEpisode, InteractionPool, melu_episodes
from personalize.tasks.splits import SPLIT_NAMES, TaskSplits, split_tasks
from personalize.tasks.suite_spec import (
    ClassificationSuiteSpec,
    ExtraSource,
    InteractionSuiteSpec,
    SuiteSpec,
    spec_from_dict,
)

Pool = TextTaskPool | InteractionPool
AnyEpisode = Episode | InteractionEpisode


class TaskSuite:
    """A suite spec plus its data: task pools per split and seeded episodes.

    Args:
        spec: the suite definition.
        frame: the data table; by default ``personalize.data.load(spec.dataset)[spec.table]``. A
            suite with ``extra_sources`` takes a mapping of frames by data set name (sources not
            in it are loaded).
    """

    def __init__(self, spec: SuiteSpec, frame: Any = None) -> None:
        self.spec = spec
        self._frame = frame
        self._split_pools: dict[tuple[str, int | None], Pool] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def pool(self) -> Pool:
        """Every task of the suite that the protocol admits, across all splits."""
        if isinstance(self.spec, ClassificationSuiteSpec):
            return self._classification_pool(self.spec)
        frame = self._table(self.spec.dataset, self.spec.table)
        spec = self.spec
        assert isinstance(spec, InteractionSuiteSpec)
        pool = InteractionPool(frame, user_column=spec.user_column, item_column=spec.item_column,
                               rating_column=spec.rating_column)
        return pool.with_counts(spec.min_ratings, spec.max_ratings)

    def _table(self, dataset: str, table: str) -> Any:
        """The frame of one source: handed in (a frame, or a mapping by data set name), else loaded."""
        handed = self._frame
        if isinstance(handed, Mapping):
            require(dataset in handed, f"suite {self.name!r}: no frame given for data set {dataset!r}; "
                                       f"given: {sorted(handed)}", SuiteError)
            return handed[dataset]
        if handed is not None and dataset == self.spec.dataset:
            return handed
        from personalize import data

        return data.load(dataset)[table]

    def splits(self, seed: int | None = None) -> TaskSplits:
        """The suite's task splits; ``seed`` overrides the spec's seed for fraction-based splits."""
        declared = self.spec.splits
        if declared.fractions is not None:
            return split_tasks(self.pool.tasks, declared.fractions, declared.seed if seed is None else seed)
        require(seed is None, f"suite {self.name!r} has fixed task lists; a split seed does not apply", SuiteError)
        splits = TaskSplits(train=declared.train, val=declared.val, test=declared.test)
        known = set(self.pool.tasks)
        missing = [task for split in SPLIT_NAMES for task in splits[split] if task not in known]
        require(not missing, f"suite {self.name!r} lists tasks absent from its data: {missing}; "
                             f"the data has {list(self.pool.tasks)}", SuiteError)
        return splits

    def split_pool(self, split: str, seed: int | None = None) -> Pool:
        """The pool restricted to one split's tasks (computed once per split and seed)."""
        key = (split, seed)
        if key not in self._split_pools:
            self._split_pools[key] = self.pool.restrict(self.splits(seed)[split])
        return self._split_pools[key]

    def episodes(
        self,
        split: str,
        *,
        shots: int | None,
        n: int | None = None,
        seed: int = 0,
        task: Hashable | None = None,
        split_seed: int | None = None,
    ) -> list[AnyEpisode]:
        """Seeded evaluation episodes: the same arguments give the same episodes, for every method.

        Classification: ``n`` episodes (default 100), each from a task drawn among the split's tasks
        (or the given ``task``). Interactions: the MeLU protocol over the split's users, one episode
        per user, ``shots`` support ratings each (None = all but the query), at most ``n`` users.
        """
        pool = self.split_pool(split, split_seed)
        if isinstance(pool, InteractionPool):
            spec = self.spec
            assert isinstance(spec, InteractionSuiteSpec)
            episodes = melu_episodes(pool, seed=seed, shots=shots, min_ratings=spec.min_ratings,
                                     max_ratings=spec.max_ratings, query_size=spec.query_size)
            return episodes[:n] if n is not None else episodes
        require(shots is not None, "classification episodes need shots")
        tasks = [task] if task is not None else self._tasks_supplying(pool, shots)
        return [self._classification_episode(pool, tasks, shots, keyed_rng(seed, i)) for i in range(n or 100)]

    def sample(self, split: str, *, shots: int, rng: Rng, split_seed: int | None = None,
               query_per_class: int | None = None) -> AnyEpisode:
        """One random training episode from a random task of ``split``.

        ``query_per_class`` overrides the suite's query size for classification episodes (smaller
        queries make meta-training steps cheaper); it does not apply to interaction suites.
        """
        rng = as_rng(rng)
        pool = self.split_pool(split, split_seed)
        if isinstance(pool, InteractionPool):
            spec = self.spec
            assert isinstance(spec, InteractionSuiteSpec)
            user = pool.tasks[rng.integers(len(pool.tasks))]
            return pool.sample(user, shots=shots, query_size=spec.query_size, rng=rng)
        tasks = self._tasks_supplying(pool, shots, query_per_class)
        return self._classification_episode(pool, tasks, shots, rng, query_per_class)

    def summary(self, split_seed: int | None = None) -> dict[str, Any]:
        """One row describing the suite: tasks and examples per split and the episode shape."""
        splits = self.splits(split_seed)
        datasets = [self.spec.dataset] + [extra.dataset for extra in getattr(self.spec, "extra_sources", ())]
        row: dict[str, Any] = {"suite": self.name, "dataset": " + ".join(datasets), "kind": self.spec.kind}
        for split in SPLIT_NAMES:
            pool = self.pool.restrict(splits[split])
            row[f"{split} tasks"] = len(pool.tasks)
            row[f"{split} examples"] = len(pool)
        row["shots"] = ", ".join(map(str, self.spec.shots))
        if isinstance(self.spec, ClassificationSuiteSpec):
            row["episode"] = f"{self.spec.ways}-way, {self.spec.query_per_class} queries/class"
        else:
            assert isinstance(self.spec, InteractionSuiteSpec)
            row["episode"] = f"{self.spec.query_size} query ratings/user"
        return row

    def _tasks_supplying(self, pool: TextTaskPool, shots: int, queries: int | None = None) -> list[Hashable]:
        spec = self.spec
        assert isinstance(spec, ClassificationSuiteSpec)
        needed = shots + (spec.query_per_class if queries is None else queries)
        tasks = [task for task in pool.tasks
                 if sum(count >= needed for count in pool.class_counts(task).values()) >= spec.ways]
        if not tasks:
            raise EpisodeError(f"no task of suite {self.name!r} has {spec.ways} classes with >= {needed} examples")
        return tasks

    def _classification_episode(self, pool: TextTaskPool, tasks: list[Hashable], shots: int,
                                rng: Any, queries: int | None = None) -> Episode:
        spec = self.spec
        assert isinstance(spec, ClassificationSuiteSpec)
        chosen = tasks[int(rng.integers(len(tasks)))]
        query_per_class = spec.query_per_class if queries is None else queries
        return pool.sample(chosen, ways=spec.ways, shots=shots, query_per_class=query_per_class, rng=rng)


    def _classification_pool(self, spec: ClassificationSuiteSpec) -> TextTaskPool:
        return _classification_pool(spec, self._table(spec.dataset, spec.table),
                                    [(extra, self._table(extra.dataset, extra.table)) for extra in spec.extra_sources])


def _classification_pool(spec: ClassificationSuiteSpec, frame: Any,
                         extras: Sequence[tuple[ExtraSource, Any]] = ()) -> TextTaskPool:
    """Apply each source's class rules (rows matching no rule are dropped), stack the sources, index them.

    A task name found in two sources is refused: splits are by task, so a shared name would
    silently merge two domains.
    """
    import polars as pl

    main = ExtraSource(dataset=spec.dataset, table=spec.table, label_column=spec.label_column,
                       text_column=spec.text_column, task_column=spec.task_column,
                       task_name=None if spec.task_column else spec.task_name, classes=spec.classes)
    labelled = [_labelled_rows(spec.name, source, source_frame)
                for source, source_frame in [(main, frame), *extras]]
    seen: dict[Any, str] = {}
    for source, rows in zip([main, *(extra for extra, _ in extras)], labelled):
        for task in rows["task"].drop_nulls().unique().to_list():
            require(task not in seen, f"suite {spec.name!r}: task {task!r} is in both {seen.get(task)!r} and "
                                      f"{source.dataset!r}; task names must be unique across sources", SuiteError)
            seen[task] = source.dataset
    stacked = labelled[0] if len(labelled) == 1 else pl.concat(labelled, how="vertical_relaxed")
    return TextTaskPool(stacked, classes=[rule.name for rule in spec.classes])


def _labelled_rows(suite: str, source: ExtraSource, frame: Any) -> Any:
    """(task, text, label) rows of one source, label = the name of the class rule a row matches."""
    import polars as pl

    from personalize.frames import as_polars, require_columns

    assert source.classes is not None
    frame = as_polars(frame)
    needed = [source.text_column, source.label_column] + ([source.task_column] if source.task_column else [])
    require_columns(frame, needed, what=f"suite {suite!r} ({source.dataset})")
    matches = [rule.expression(source.label_column).fill_null(False).cast(pl.Int8) for rule in source.classes]
    overlapping = frame.select(pl.sum_horizontal(matches).alias("n")).filter(pl.col("n") > 1).height
    require(overlapping == 0, f"suite {suite!r}: {overlapping} rows of {source.dataset} match more than one "
                              "class rule", SuiteError)
    label = pl.when(matches[0] == 1).then(pl.lit(source.classes[0].name))
    for rule, match in zip(source.classes[1:], matches[1:]):
        label = label.when(match == 1).then(pl.lit(rule.name))
    task = pl.col(source.task_column) if source.task_column else pl.lit(source.task_name)
    return frame.select(task.alias("task"), pl.col(source.text_column).cast(pl.Utf8).alias("text"),
                        label.alias("label"))


def available_suites() -> list[str]:
    """Names of the suites shipped with the project."""
    return sorted(path.stem for path in builtin_suites_dir().glob("*.toml"))


def load_suite(name_or_path: str | Path, frame: Any = None) -> TaskSuite:
    """Load a shipped suite by name, or any suite file by path.

    >>> load_suite("clothing-sentiment").spec.splits.test
    ('Jackets', 'Sweaters', 'Skirts')
    """
    path = Path(name_or_path)
    if path.suffix != ".toml":  # a shipped suite's name: it may not lead out of their folder
        path = inside(builtin_suites_dir(), f"{name_or_path}.toml", where=f"suite name {str(name_or_path)!r}",
                      fix=f"give a shipped suite's name ({', '.join(available_suites())}) or a suite .toml file's path",
                      error=SuiteError)
    if not path.is_file():
        raise SuiteError(f"no suite {str(name_or_path)!r}: no file {path}; shipped suites: {available_suites()}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(f"suite file {path} is not valid TOML: {error}") from error
    return TaskSuite(spec_from_dict(raw), frame=frame)
