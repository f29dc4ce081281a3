"""Reading fetched data sets: `load`, `LocalDataset`, `is_fetched` and `names`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from personalize.data import store
from personalize.data.sources import DATASETS, spec_for
from personalize.errors import DataError
from personalize.paths import dataset_dir

if TYPE_CHECKING:
    import datasets
    import polars as pl


@dataclass(frozen=True)
class LocalDataset:
    """A fetched data set: its name and its tables (polars frames) by table name.

    >>> import polars as pl
    >>> toy = LocalDataset("toy", {"reviews": pl.DataFrame({"text": ["good", "bad"]})})
    >>> toy
    LocalDataset('toy', reviews=2x1)
    >>> toy["reviews"].height
    2
    >>> toy["ratings"]
    Traceback (most recent call last):
    ...
    KeyError: "data set 'toy' has no table 'ratings'; its tables are: reviews"
    """

    name: str
    tables: Mapping[str, pl.DataFrame]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))

    def __getitem__(self, table: str) -> pl.DataFrame:
        if table not in self.tables:
            known = ", ".join(self.tables)
            raise KeyError(
                f"data set {self.name!r} has no table {table!r}; its tables are: {known}"
            )
        return self.tables[table]

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{table}={frame.height}x{frame.width}" for table, frame in self.tables.items()
        )
        return f"LocalDataset({self.name!r}, {shapes})"

    def to_hf(self) -> datasets.Dataset | datasets.DatasetDict:
        """The same rows and columns as a Hugging Face ``datasets.Dataset`` (one table) or a
        ``datasets.DatasetDict`` keyed by table name (several tables).

        Needs the ``hf`` extra (``pip install personalize[hf]``); without it a MissingDependencyError says so.
        """
        from personalize.extras import require_module

        datasets = require_module("datasets", extra="hf", feature="LocalDataset.to_hf()")

        converted = {
            table: datasets.Dataset.from_polars(frame) for table, frame in self.tables.items()
        }
        if len(converted) == 1:
            return next(iter(converted.values()))
        return datasets.DatasetDict(converted)


def names() -> list[str]:
    """The names of the data sets that can be fetched.

    >>> names()
    ['movielens-100k', 'clothing-reviews', 'rotten-tomatoes', 'vader-snippets', 'pattern-polarity']
    """
    return list(DATASETS)


def is_fetched(name: str) -> bool:
    """Whether data set ``name`` is fetched and intact, so that :func:`load` will succeed."""
    try:
        store.verified_manifest(spec_for(name))
    except DataError:
        return False
    return True


def load(name: str) -> LocalDataset:
    """The fetched tables of data set ``name``, after checking them against their manifest.

    Raises DataNotFetchedError (with the ``personalize data fetch NAME`` fix) when it was not
    fetched, and ChecksumError when a table file changed since it was written.
    """
    import polars as pl

    spec = spec_for(name)
    store.verified_manifest(spec)
    folder = dataset_dir(name)
    return LocalDataset(
        name, {table: pl.read_parquet(store.table_file(folder, table)) for table in spec.tables}
    )
