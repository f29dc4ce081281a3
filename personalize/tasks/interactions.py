"""Interaction tasks: each user is a task; their rated items are split into support and query.

An :class:`InteractionPool` sorts a (user, item, rating) frame by user once and keeps, for every
user, where their rows start and how many there are. Episodes are row positions into the pool's
item and rating arrays.

>>> import polars as pl
>>> ratings = pl.DataFrame({
...     "user_id": [1] * 14 + [2] * 5,
...     "item_id": list(range(14)) + list(range(5)),
...     "rating": [4] * 19,
... })
>>> pool = InteractionPool(ratings)
>>> pool.tasks, pool.counts().tolist()
((1, 2), [14, 5])
>>> episodes = melu_episodes(pool, seed=0)         # users with 13-100 ratings; query = 10 of them
>>> [(e.user, len(e.support_rows), len(e.query_rows)) for e in episodes]
[(1, 4, 10)]
>>> pool.sample(2, shots=3, query_size=2, rng=0).support_items.shape
(3,)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personalize.errors import EpisodeError, SchemaError, require
from personalize.frames import as_polars, require_columns
from personalize.tasks.episodes import Rng, as_rng, keyed_rng

MELU_MIN_RATINGS = 13
MELU_MAX_RATINGS = 100
MELU_QUERY_SIZE = 10


@dataclass(frozen=True)
class InteractionEpisode:
    """One user's task: support interactions to adapt on, query interactions to predict."""

    user: Hashable
    support_rows: np.ndarray
    query_rows: np.ndarray
    pool: InteractionPool = field(repr=False, compare=False)

    @property
    def support_items(self) -> np.ndarray:
        return self.pool.items[self.support_rows]

    @property
    def support_ratings(self) -> np.ndarray:
        return self.pool.ratings[self.support_rows]

    @property
    def query_items(self) -> np.ndarray:
        return self.pool.items[self.query_rows]

    @property
    def query_ratings(self) -> np.ndarray:
        return self.pool.ratings[self.query_rows]


class InteractionPool:
    """(user, item, rating) rows grouped by user for cheap per-user episode sampling.

    Args:
        frame: a polars (or pandas) frame with one row per interaction.
        user_column, item_column, rating_column: which columns hold them. Ratings must be finite
            numbers; a null anywhere in the three columns is an error, not silently dropped.
    """

    def __init__(
        self,
        frame: Any,
        *,
        user_column: str = "user_id",
        item_column: str = "item_id",
        rating_column: str = "rating",
    ) -> None:
        frame = as_polars(frame)
        require_columns(frame, [user_column, item_column, rating_column], what="interaction")
        frame = frame.select(user_column, item_column, rating_column)
        nulls = {name: count for name, count in zip(frame.columns, frame.null_count().row(0)) if count}
        require(not nulls, f"interaction frame has nulls: {nulls}", SchemaError)
        if not frame.schema[rating_column].is_numeric():
            raise SchemaError(f"rating column {rating_column!r} must be numeric, got {frame.schema[rating_column]}")
        frame = frame.sort(user_column, maintain_order=True)
        ratings = frame[rating_column].to_numpy().astype(np.float32)
        require(bool(np.isfinite(ratings).all()), "ratings must be finite numbers (found NaN or inf)", SchemaError)
        users, starts, counts = np.unique(frame[user_column].to_numpy(), return_index=True, return_counts=True)
        self.items: np.ndarray = frame[item_column].to_numpy()
        self.ratings: np.ndarray = ratings
        self._users, self._starts, self._counts = users, starts, counts

    @property
    def tasks(self) -> tuple[Hashable, ...]:
        """User ids, sorted."""
        return tuple(self._users.tolist())

    def __len__(self) -> int:
        """Number of interactions of the users in this pool."""
        return int(self._counts.sum())

    def counts(self) -> np.ndarray:
        """Number of interactions of each user, in ``tasks`` order."""
        return self._counts

    def rows_of(self, user: Hashable) -> np.ndarray:
        """Row positions of ``user``'s interactions."""
        position = self._position(user)
        start = self._starts[position]
        return np.arange(start, start + self._counts[position])

    def restrict(self, users: Iterable[Hashable]) -> InteractionPool:
        """A pool over only ``users``, sharing the item and rating arrays (nothing is copied)."""
        positions = np.array([self._position(user) for user in users], dtype=np.int64)
        order = np.argsort(self._users[positions], kind="stable") if len(positions) else positions
        positions = positions[order]
        view = object.__new__(InteractionPool)
        view.items, view.ratings = self.items, self.ratings
        view._users, view._starts, view._counts = (
            self._users[positions],
            self._starts[positions],
            self._counts[positions],
        )
        return view

    def with_counts(self, minimum: int = 1, maximum: int | None = None) -> InteractionPool:
        """The users with between ``minimum`` and ``maximum`` interactions (inclusive)."""
        keep = self._counts >= minimum
        if maximum is not None:
            keep &= self._counts <= maximum
        return self.restrict(self._users[keep].tolist())

    def sample(self, user: Hashable, *, shots: int | None, query_size: int, rng: Rng) -> InteractionEpisode:
        """Split ``user``'s interactions: ``query_size`` random ones form the query; the support is
        ``shots`` random ones among the rest (0: none, a cold start), or all the rest when ``shots`` is None."""
        require(query_size >= 0, f"query_size must be >= 0, got {query_size}")
        require(shots is None or shots >= 0, f"shots must be >= 0 or None, got {shots}")
        rows = as_rng(rng).permutation(self.rows_of(user))
        available = len(rows) - query_size
        wanted = available if shots is None else shots
        if available < 1 or wanted > available:
            raise EpisodeError(
                f"user {user!r} has {len(rows)} interactions: too few for {query_size} queries "
                f"and {wanted} support interactions"
            )
        return InteractionEpisode(
            user=user,
            support_rows=np.sort(rows[query_size : query_size + wanted]),
            query_rows=np.sort(rows[:query_size]),
            pool=self,
        )

    def _position(self, user: Hashable) -> int:
        position = int(np.searchsorted(self._users, user))
        if position >= len(self._users) or self._users[position] != user:
            raise EpisodeError(f"unknown user {user!r}")
        return position


def melu_episodes(
    pool: InteractionPool,
    *,
    seed: int,
    shots: int | None = None,
    min_ratings: int = MELU_MIN_RATINGS,
    max_ratings: int = MELU_MAX_RATINGS,
    query_size: int = MELU_QUERY_SIZE,
) -> list[InteractionEpisode]:
    """The MeLU cold-start protocol: one episode per user with ``min_ratings``..``max_ratings``
    interactions, ``query_size`` random ones as the query and the rest (or ``shots`` of the rest)
    as the support. Users with too few interactions for ``shots`` are skipped.

    Each user's split comes from a generator keyed by (seed, user): the query set of a user is the
    same for every ``shots``, and the support at K is contained in the support at any larger K.
    """
    require(min_ratings > query_size, f"min_ratings ({min_ratings}) must exceed query_size ({query_size})")
    eligible = pool.with_counts(min_ratings, max_ratings)
    episodes = []
    for user, count in zip(eligible.tasks, eligible.counts()):
        if shots is None or count - query_size >= shots:
            rng = keyed_rng(seed, user)
            episodes.append(pool.sample(user, shots=shots, query_size=query_size, rng=rng))
    return episodes
