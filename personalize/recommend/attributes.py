"""What is known about a user before any rating (age, occupation, ...) as a vector the prior reads.

Model-based meta-learning makes the prior a function of what is known about the task: a user's
taste weights have the prior mean ``m + W a(user)``, where ``a`` encodes the user's attributes and
``W`` is meta-learned with the rest of the prior. So a user with no rating already gets a personal
prior, and a few ratings move them from there.

Each attribute column is encoded from the *training* users:

- a text, boolean or categorical column: one indicator per value held by at least ``min_users``
  training users; rarer values share one ``<rare>`` indicator;
- a numeric column: one indicator per quantile bin of the training users' values (``bins`` of them,
  fewer when values repeat).

Indicators are centred by their share among the training users, so an all-zero block means "the
average training user" for that column. That is the documented fallback: a missing value (None) or
a value no training user held counts as the average for its column, never as some other level.

>>> import polars as pl
>>> users = pl.DataFrame({"user_id": [1, 2, 3, 4], "job": ["cook", "cook", "poet", "cook"], "age": [20, 30, 40, 50]})
>>> codes = UserAttributes.fit(users, min_users=2, bins=2)
>>> codes.names
['job=cook', 'job=<rare>', 'age<35', 'age>=35']
>>> codes.encode_records([{"job": "cook", "age": 60}]).tolist()
[[0.25, -0.25, -0.5, 0.5]]
>>> codes.encode_records([{"job": "astronaut", "age": None}]).tolist()     # unseen and missing: the average
[[0.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from personalize.errors import SchemaError, require

if TYPE_CHECKING:
    import polars as pl

RARE = "<rare>"
"""The name of the indicator that values held by too few training users share."""


@dataclass(frozen=True)
class ColumnCode:
    """How one attribute column becomes indicators: ``levels`` (categorical) or bin ``edges`` (numeric)."""

    name: str
    kind: str                       # "categorical" or "numeric"
    levels: tuple[Any, ...] = ()    # categorical: the values with their own indicator (then <rare>)
    edges: tuple[float, ...] = ()   # numeric: inner bin edges, ascending
    rare: tuple[Any, ...] = ()      # categorical: values held by too few training users (they share ``<rare>``)
    shares: tuple[float, ...] = ()  # share of training users per indicator (the centring)

    @property
    def width(self) -> int:
        return len(self.shares)

    def names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={level}" for level in self.levels] + [f"{self.name}={RARE}"]
        bounds = [f"{edge:g}" for edge in self.edges]
        if not bounds:
            return [f"{self.name}: all"]
        return ([f"{self.name}<{bounds[0]}"] + [f"{low}<={self.name}<{high}" for low, high in zip(bounds, bounds[1:])]
                + [f"{self.name}>={bounds[-1]}"])

    def slot(self, value: Any) -> int | None:
        """The indicator ``value`` turns on, or None for a missing or never-seen value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if self.kind == "numeric":
            require(isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool),
                    f"attribute {self.name!r} is numeric in training, got {value!r}", SchemaError)
            return int(np.searchsorted(np.asarray(self.edges), float(value), side="right"))
        if value in self.levels:
            return self.levels.index(value)
        return self.width - 1 if value in self.rare else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "levels": list(self.levels), "edges": list(self.edges),
                "rare": list(self.rare), "shares": list(self.shares)}


class UserAttributes:
    """The attribute columns a recommender was meta-fitted with, and how each is encoded."""

    def __init__(self, codes: Sequence[ColumnCode]) -> None:
        self.codes = list(codes)

    @property
    def columns(self) -> list[str]:
        return [code.name for code in self.codes]

    @property
    def width(self) -> int:
        """Length of a user's attribute vector."""
        return sum(code.width for code in self.codes)

    @property
    def names(self) -> list[str]:
        """One readable name per entry of the attribute vector."""
        return [name for code in self.codes for name in code.names()]

    def __repr__(self) -> str:
        return f"UserAttributes({self.columns}, width={self.width})"

    @classmethod
    def fit(cls, users: pl.DataFrame, *, user_column: str = "user_id", columns: Sequence[str] | None = None,
            min_users: int = 10, bins: int = 5) -> UserAttributes:
        """Encode the attribute ``columns`` (default: every column but the user id) of training ``users``."""
        import polars as pl

        require(user_column in users.columns, f"the users frame has no {user_column!r} column "
                                              f"(columns: {users.columns})", SchemaError)
        names = [name for name in users.columns if name != user_column] if columns is None else list(columns)
        missing = [name for name in names if name not in users.columns]
        require(not missing, f"the users frame has no attribute column(s) {missing} (columns: {users.columns})",
                SchemaError)
        require(len(names) > 0, "the users frame has no attribute column besides the user id", SchemaError)
        codes = []
        for name in names:
            values = users[name]
            if values.dtype.is_numeric() and values.dtype != pl.Boolean:
                present = values.drop_nulls().cast(pl.Float64).to_numpy()
                present = present[np.isfinite(present)]
                require(len(present) > 0, f"attribute column {name!r} has no value", SchemaError)
                edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
                counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
                codes.append(ColumnCode(name, "numeric", edges=tuple(float(e) for e in edges),
                                        shares=tuple((counts / len(users)).tolist())))
            else:
                require(values.dtype in (pl.Utf8, pl.Boolean, pl.Categorical) or values.dtype.is_integer(),
                        f"attribute column {name!r} must hold text, booleans, categories or numbers, "
                        f"got {values.dtype}", SchemaError)
                counted = values.drop_nulls().value_counts()  # most users first, ties by value: one order always
                counted = counted.with_columns(pl.col(name).cast(pl.Utf8).alias("_text")).sort(
                    ["count", "_text"], descending=[True, False]).drop("_text")
                frequent = counted.filter(pl.col("count") >= min_users)
                rare = counted.filter(pl.col("count") < min_users)
                counts = frequent["count"].to_list() + [rare["count"].sum()]
                shares = [count / len(users) for count in counts]
                codes.append(ColumnCode(name, "categorical", levels=tuple(frequent[name].to_list()),
                                        rare=tuple(sorted(rare[name].to_list(), key=str)), shares=tuple(shares)))
        return cls(codes)

    # --- encoding ------------------------------------------------------------------------------------------

    def encode_records(self, records: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Attribute vectors [U, width] of users given as dicts column -> value.

        Every column must be named (None for an unknown value); a value no training user held counts
        as that column's average (see the module docstring). A key that is not an attribute column
        is refused: it may be a misspelt one.
        """
        out = torch.zeros(len(records), self.width)
        for row, record in enumerate(records):
            require(isinstance(record, Mapping), f"attributes must be a dict of column -> value, got {record!r}",
                    SchemaError)
            unknown = sorted(set(record) - set(self.columns))
            require(not unknown, f"unknown attribute(s) {unknown}: this recommender knows {self.columns}", SchemaError)
            missing = [name for name in self.columns if name not in record]
            require(not missing, f"attribute(s) {missing} missing: give every one of {self.columns} "
                                 "(None for a value you do not know)", SchemaError)
            out[row] = self._vector([record[name] for name in self.columns])
        return out

    def encode_frame(self, users: pl.DataFrame, ids: Sequence[Hashable], *, user_column: str = "user_id"
                     ) -> torch.Tensor:
        """Attribute vectors [len(ids), width] of the users ``ids``, looked up in a users frame.

        The frame must hold every attribute column and one row per user; rows of other users are
        ignored; a user of ``ids`` without a row is refused (name them with None values instead).
        """
        import polars as pl

        from personalize.frames import as_polars

        users = as_polars(users)
        require(user_column in users.columns, f"the users frame has no {user_column!r} column "
                                              f"(columns: {users.columns})", SchemaError)
        missing = [name for name in self.columns if name not in users.columns]
        require(not missing, f"the users frame lacks attribute column(s) {missing}; this recommender was "
                             f"meta-fitted with {self.columns}", SchemaError)
        repeated = users.filter(pl.col(user_column).is_duplicated())[user_column].unique().to_list()
        require(not repeated, f"the users frame has more than one row for user(s) {repeated[:5]}", SchemaError)
        rows = dict(zip(users[user_column].to_list(), users.select(self.columns).rows()))
        absent = [user for user in ids if user not in rows]
        require(not absent, f"{len(absent)} user(s) have no row in the users frame, e.g. {absent[:5]}; add them "
                            "(None for unknown values) or leave users= out", SchemaError)
        out = torch.zeros(len(ids), self.width)
        for row, user in enumerate(ids):
            out[row] = self._vector(list(rows[user]))
        return out

    def unseen_values(self, records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Per column, the given values (not None) that no training user held: they count as average."""
        unseen: dict[str, list[Any]] = {}
        for code in self.codes:
            if code.kind != "categorical":
                continue
            values = {record.get(code.name) for record in records} - {None}
            strange = sorted((value for value in values if code.slot(value) is None), key=str)
            if strange:
                unseen[code.name] = strange
        return unseen

    def _vector(self, values: Sequence[Any]) -> torch.Tensor:
        parts = []
        for code, value in zip(self.codes, values):
            block = torch.zeros(code.width)
            slot = code.slot(value)
            if slot is not None:
                block[slot] = 1.0
                block -= torch.tensor(code.shares)
            parts.append(block)
        return torch.cat(parts) if parts else torch.zeros(0)

    # --- saving ----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [code.to_dict() for code in self.codes]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> UserAttributes:
        codes = []
        for entry in raw["columns"]:
            codes.append(ColumnCode(entry["name"], entry["kind"], levels=tuple(entry["levels"]),
                                    edges=tuple(entry["edges"]), shares=tuple(entry["shares"]),
                                    rare=tuple(entry.get("rare", ()))))
        return cls(codes)


@dataclass
class AttributeTable:
    """Attribute vectors of known users, looked up by user id (meta-training's users)."""

    index: dict[Hashable, int]
    vectors: torch.Tensor  # [users, width]

    @classmethod
    def build(cls, attributes: UserAttributes, users: pl.DataFrame, ids: Sequence[Hashable]) -> AttributeTable:
        return cls({user: row for row, user in enumerate(ids)}, attributes.encode_frame(users, ids))

    def of(self, users: Sequence[Hashable]) -> torch.Tensor:
        """Vectors [len(users), width] of ``users`` (each must be in the table)."""
        return self.vectors[torch.as_tensor([self.index[user] for user in users], dtype=torch.long)]


ATTRIBUTE_RIDGES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
"""Ridges of :func:`fit_attribute_weights` that meta-fitting tries on the validation users."""


def fit_attribute_weights(vectors: torch.Tensor, offsets: torch.Tensor, ridge: float) -> torch.Tensor:
    """The weights ``W`` [D, A] of the prior mean ``m + W a``: a ridge regression of training users'
    ``offsets`` [U, D] (their posterior mean minus ``m``) on their attribute vectors [U, A].

    This is empirical Bayes: each training user's taste, estimated from their own ratings, tells how
    far their group sits from the average; the ridge shrinks groups with few users toward it.

    >>> vectors = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0]])    # two groups, centred
    >>> offsets = torch.tensor([[0.5], [-0.5], [0.5]])                      # group one rates 0.5 higher
    >>> weights = fit_attribute_weights(vectors, offsets, ridge=0.01)
    >>> (vectors @ weights.T).squeeze(-1).round(decimals=2).tolist()
    [0.5, -0.5, 0.5]
    """
    from personalize.engine.gaussian import ridge_solve

    size, width = offsets.shape[1], vectors.shape[1]
    gram = (vectors.T @ vectors).expand(size, width, width)
    return ridge_solve(gram, (vectors.T @ offsets).T, ridge)
