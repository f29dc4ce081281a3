"""Small helpers for the data frames users hand to personalize (polars, or pandas converted).

>>> import polars as pl
>>> frame = as_polars(pl.DataFrame({"user": [1, 2], "item": [5, 6]}))
>>> require_columns(frame, ["user", "item"], what="ratings")
>>> require_columns(frame, ["user", "rating"], what="ratings")
Traceback (most recent call last):
...
personalize.errors.SchemaError: ratings frame lacks column(s) 'rating'; it has 'user', 'item'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from personalize.errors import SchemaError

if TYPE_CHECKING:
    import polars as pl


def as_polars(frame: Any) -> pl.DataFrame:
    """Return ``frame`` as a polars DataFrame; pandas frames are converted, anything else refused."""
    import polars as pl

    if isinstance(frame, pl.DataFrame):
        return frame
    if type(frame).__module__.startswith("pandas") and hasattr(frame, "columns"):
        return pl.from_pandas(frame)
    raise SchemaError(f"expected a polars or pandas DataFrame, got {type(frame).__name__}")


def require_columns(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> None:
    """Raise SchemaError naming every column of ``columns`` that ``frame`` lacks."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SchemaError(
            f"{what} frame lacks column(s) {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(repr, frame.columns))}"
        )
