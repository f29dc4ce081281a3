"""Task-suite definitions: small TOML files saying what a task is, how labels are made, the splits.

A suite file names a data set table (a classification suite may add more with
``[[extra_sources]]``, each mapping its own labels onto the suite's classes) and one of two kinds
of task:

- ``classification``: a task is a domain (the value of ``task_column``, or the whole table when
  there is none) and its examples are texts whose class comes from ``classes`` rules;
- ``interactions``: a task is a user, and its examples are the user's rated items.

>>> spec = spec_from_dict({
...     "name": "toy", "kind": "classification", "dataset": "clothing-reviews", "table": "reviews",
...     "task_column": "domain", "label_column": "rating", "shots": [1, 2],
...     "classes": [{"name": "negative", "max": 2}, {"name": "positive", "min": 4}],
...     "splits": {"train": ["Dresses"], "test": ["Jackets"]},
... })
>>> spec.ways, spec.classes[1].name, spec.splits.test
(2, 'positive', ('Jackets',))
>>> spec_from_dict({"name": "toy", "kind": "graph"})
Traceback (most recent call last):
...
personalize.errors.SuiteError: suite 'toy': kind must be 'classification' or 'interactions', got 'graph'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from personalize.errors import SuiteError, require


@dataclass(frozen=True)
class ClassRule:
    """Which rows of the label column belong to class ``name``: a numeric range or a set of values."""

    name: str
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        ranged = self.min is not None or self.max is not None
        require(ranged != (self.values is not None),
                f"class {self.name!r} needs either min/max or values, not both or neither", SuiteError)

    def expression(self, column: str) -> Any:
        """A polars boolean expression selecting this class's rows."""
        import polars as pl

        if self.values is not None:
            return pl.col(column).is_in(list(self.values))
        condition = pl.lit(True)
        if self.min is not None:
            condition &= pl.col(column) >= self.min
        if self.max is not None:
            condition &= pl.col(column) <= self.max
        return condition


@dataclass(frozen=True)
class SplitSpec:
    """Either explicit task lists per split, or fractions of the tasks drawn with a seed."""

    train: tuple[Any, ...] = ()
    val: tuple[Any, ...] = ()
    test: tuple[Any, ...] = ()
    fractions: tuple[float, float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        explicit = bool(self.train or self.val or self.test)
        require(explicit != (self.fractions is not None),
                "splits need either task lists (train/val/test) or fractions, not both or neither", SuiteError)


@dataclass(frozen=True)
class ExtraSource:
    """One more table whose tasks join a classification suite (``[[extra_sources]]`` in TOML).

    Its rows get the suite's class names through their own ``classes`` rules (default: the
    suite's), so tables whose labels differ (a 1-5 rating, a "positive"/"negative" column) can
    share one suite. Tasks are its ``task_column`` values, or the single task ``task_name``.
    """

    dataset: str
    table: str
    label_column: str
    text_column: str = "text"
    task_column: str | None = None
    task_name: str | None = None
    classes: tuple[ClassRule, ...] | None = None

    def __post_init__(self) -> None:
        require((self.task_column is None) != (self.task_name is None),
                f"extra source {self.dataset!r}: give task_column or task_name, not both or neither", SuiteError)


@dataclass(frozen=True, kw_only=True)
class SuiteSpec:
    """What every suite declares."""

    kind: ClassVar[str]
    name: str
    dataset: str
    table: str
    splits: SplitSpec
    shots: tuple[int, ...]
    description: str = ""

    def __post_init__(self) -> None:
        require(bool(self.shots) and all(k >= 1 for k in self.shots),
                f"suite {self.name!r}: shots must be a non-empty list of integers >= 1, got {self.shots}", SuiteError)


@dataclass(frozen=True, kw_only=True)
class ClassificationSuiteSpec(SuiteSpec):
    """A suite whose tasks are domains of labelled texts."""

    kind: ClassVar[str] = "classification"
    label_column: str
    classes: tuple[ClassRule, ...]
    text_column: str = "text"
    task_column: str | None = None
    task_name: str = "all"  # the single task's key when there is no task_column
    ways: int = 2
    query_per_class: int = 32
    extra_sources: tuple[ExtraSource, ...] = ()
    """More tables whose tasks join the suite; a task name must be unique across all of them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [rule.name for rule in self.classes]
        datasets = [self.dataset] + [extra.dataset for extra in self.extra_sources]
        require(len(set(datasets)) == len(datasets),
                f"suite {self.name!r}: each source must be a different data set, got {datasets}", SuiteError)
        for extra in self.extra_sources:
            extra_names = sorted(rule.name for rule in extra.classes or ())
            require(extra.classes is None or extra_names == sorted(names),
                    f"suite {self.name!r}: extra source {extra.dataset!r} must define the suite's classes "
                    f"{sorted(names)}, got {extra_names}", SuiteError)
        require(len(names) >= 2 and len(set(names)) == len(names),
                f"suite {self.name!r}: needs >= 2 distinct classes, got {names}", SuiteError)
        require(2 <= self.ways <= len(names),
                f"suite {self.name!r}: ways must be between 2 and {len(names)}, got {self.ways}", SuiteError)
        require(self.query_per_class >= 1,
                f"suite {self.name!r}: query_per_class must be >= 1, got {self.query_per_class}", SuiteError)


@dataclass(frozen=True, kw_only=True)
class InteractionSuiteSpec(SuiteSpec):
    """A suite whose tasks are users with rated items."""

    kind: ClassVar[str] = "interactions"
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str = "rating"
    min_ratings: int = 13
    max_ratings: int | None = 100
    query_size: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.min_ratings > self.query_size,
                f"suite {self.name!r}: min_ratings ({self.min_ratings}) must exceed query_size "
                f"({self.query_size})", SuiteError)
        require(self.max_ratings is None or self.max_ratings >= self.min_ratings,
                f"suite {self.name!r}: max_ratings must be >= min_ratings", SuiteError)


SPEC_KINDS: dict[str, type[SuiteSpec]] = {spec.kind: spec for spec in (ClassificationSuiteSpec, InteractionSuiteSpec)}


def spec_from_dict(raw: Mapping[str, Any]) -> SuiteSpec:
    """Build and validate a suite spec from the parsed TOML of a suite file."""
    raw = dict(raw)
    name = raw.get("name", "<unnamed>")
    kind = raw.pop("kind", None)
    if kind not in SPEC_KINDS:
        raise SuiteError(f"suite {name!r}: kind must be 'classification' or 'interactions', got {kind!r}")
    spec_class = SPEC_KINDS[kind]
    known = {f.name for f in dataclasses.fields(spec_class)}
    unknown = sorted(set(raw) - known)
    require(not unknown, f"suite {name!r}: unknown field(s) {unknown}; known: {sorted(known)}", SuiteError)
    try:
        raw["splits"] = _split_spec(raw.get("splits", {}))
        raw["shots"] = tuple(int(k) for k in raw.get("shots", ()))
        if "classes" in raw:
            raw["classes"] = tuple(_class_rule(rule) for rule in raw["classes"])
        if "extra_sources" in raw:
            raw["extra_sources"] = tuple(_extra_source(extra) for extra in raw["extra_sources"])
        return spec_class(**raw)
    except TypeError as error:  # a missing required field or a wrongly shaped value
        raise SuiteError(f"suite {name!r}: {error}") from error


def _split_spec(raw: Mapping[str, Any]) -> SplitSpec:
    fields: dict[str, Any] = {key: tuple(value) for key, value in raw.items() if key in ("train", "val", "test")}
    if "fractions" in raw:
        fields["fractions"] = tuple(float(f) for f in raw["fractions"])
    if "seed" in raw:
        fields["seed"] = int(raw["seed"])
    unknown = sorted(set(raw) - {"train", "val", "test", "fractions", "seed"})
    require(not unknown, f"unknown split field(s) {unknown}", SuiteError)
    return SplitSpec(**fields)


def _class_rule(raw: Mapping[str, Any]) -> ClassRule:
    values = raw.get("values")
    return ClassRule(
        name=raw["name"],
        min=raw.get("min"),
        max=raw.get("max"),
        values=tuple(values) if values is not None else None,
    )



def _extra_source(raw: Mapping[str, Any]) -> ExtraSource:
    raw = dict(raw)
    known = {f.name for f in dataclasses.fields(ExtraSource)}
    unknown = sorted(set(raw) - known)
    require(not unknown, f"extra source {raw.get('dataset')!r}: unknown field(s) {unknown}; known: {sorted(known)}",
            SuiteError)
    if "classes" in raw:
        raw["classes"] = tuple(_class_rule(rule) for rule in raw["classes"])
    return ExtraSource(**raw)
