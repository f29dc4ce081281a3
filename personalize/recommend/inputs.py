"""Checking the frames a recommender is given: interaction logs, item tables and one user's history.

Column names are configurable through :class:`Columns`; frames may be polars or pandas; ids may be
integers or strings (one kind per frame). Every problem is a :class:`~personalize.errors.SchemaError`
naming the column and a few offending values, raised before anything is computed.

>>> import polars as pl
>>> ratings = pl.DataFrame({"user": ["u1", "u1"], "movie": [10, 11], "stars": [4.0, 5.0]})
>>> columns = Columns(user="user", item="movie", rating="stars")
>>> checked_ratings(ratings, columns).columns
['user_id', 'item_id', 'rating']
>>> checked_ratings(ratings.with_columns(stars=pl.lit(float("nan"))), columns)
Traceback (most recent call last):
...
personalize.errors.SchemaError: column 'stars' holds 2 NaN or infinite rating(s), e.g. [nan, nan]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from personalize.errors import SchemaError, require
from personalize.frames import as_polars, require_columns

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Columns:
    """Names of the columns in the caller's frames. Frames are renamed to the defaults inside."""

    user: str = "user_id"
    """User id column of an interaction log."""
    item: str = "item_id"
    """Item id column of interaction logs, histories and item tables."""
    rating: str = "rating"
    """Rating column (any real numbers; the range seen in meta-training is the valid range)."""
    text: str = "text"
    """Item description read by the encoder (e.g. "Toy Story (1995). Genres: Animation, Comedy.")."""
    title: str = "title"
    """Optional display name of an item, shown by ``recommend`` when the item table has it."""

    def __post_init__(self) -> None:
        for name in ("user", "item", "rating", "text", "title"):
            value = getattr(self, name)
            require(isinstance(value, str) and value != "", f"Columns.{name} must be a non-empty string, got {value!r}")

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ("user", "item", "rating", "text", "title")}


def checked_ratings(frame: Any, columns: Columns, *, with_user: bool = True,
                    rating_range: tuple[float, float] | None = None) -> pl.DataFrame:
    """An interaction frame as polars with columns user_id (if ``with_user``), item_id, rating (Float64).

    Refuses missing columns, nulls, non-numeric or non-finite ratings, and ratings outside
    ``rating_range`` (inclusive) when one is given.
    """
    import polars as pl

    frame = as_polars(frame)
    wanted = ([columns.user] if with_user else []) + [columns.item, columns.rating]
    what = "ratings" if with_user else "history"
    require_columns(frame, wanted, what=what)
    frame = frame.select(wanted)
    for name in wanted:
        nulls = frame[name].null_count()
        require(nulls == 0, f"column {name!r} of the {what} frame has {nulls} null(s)", SchemaError)
    require(frame.schema[columns.rating].is_numeric() or frame.schema[columns.rating] == pl.Null,  # Null: no rows
            f"rating column {columns.rating!r} must be numeric, got {frame.schema[columns.rating]}", SchemaError)
    ratings = frame[columns.rating].cast(pl.Float64).to_numpy()
    bad = ~np.isfinite(ratings)
    require(not bad.any(), f"column {columns.rating!r} holds {int(bad.sum())} NaN or infinite rating(s), "
                           f"e.g. {ratings[bad][:3].tolist()}", SchemaError)
    if rating_range is not None:
        low, high = rating_range
        outside = (ratings < low) | (ratings > high)
        require(not outside.any(), f"column {columns.rating!r} holds {int(outside.sum())} rating(s) outside the "
                                   f"range [{low:g}, {high:g}] seen in meta-training, e.g. "
                                   f"{ratings[outside][:3].tolist()}", SchemaError)
    names = {columns.item: "item_id", columns.rating: "rating"} | ({columns.user: "user_id"} if with_user else {})
    return frame.rename(names).with_columns(pl.col("rating").cast(pl.Float64))


def checked_items(frame: Any, columns: Columns) -> pl.DataFrame:
    """An item table as polars with item_id, text and (when present) title; ids must be unique and
    texts non-empty strings."""
    import polars as pl

    frame = as_polars(frame)
    require_columns(frame, [columns.item, columns.text], what="items")
    keep = [columns.item, columns.text] + ([columns.title] if columns.title in frame.columns else [])
    frame = frame.select(keep).rename({columns.item: "item_id", columns.text: "text"}
                                      | ({columns.title: "title"} if columns.title in frame.columns else {}))
    require(frame["item_id"].null_count() == 0, f"column {columns.item!r} of the items frame has null ids", SchemaError)
    require(frame.schema["text"] == pl.Utf8, f"text column {columns.text!r} must hold strings, "
                                             f"got {frame.schema['text']}", SchemaError)
    empty = frame.filter(pl.col("text").is_null() | (pl.col("text").str.strip_chars() == ""))
    require(empty.height == 0, f"{empty.height} item(s) have an empty or null {columns.text!r}, e.g. ids "
                               f"{empty['item_id'].head(3).to_list()}", SchemaError)
    duplicated = frame.filter(pl.col("item_id").is_duplicated())["item_id"].unique()
    require(duplicated.len() == 0, f"item ids appear more than once in the items frame: "
                                   f"{duplicated.head(5).to_list()}", SchemaError)
    if "title" in frame.columns:
        frame = frame.with_columns(pl.col("title").cast(pl.Utf8))
    return frame
