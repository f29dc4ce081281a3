"""Batch-adapt a recommender to every user of a ratings file and write each user's top-N.

Reads a CSV or Parquet file of (user, item, rating) rows, adapts the recommender to all users in
batched solves (``Recommender.adapt_many``), and writes one row per (user, recommended item) with
its score, predicted rating, uncertainty and rank. The output is written to a temporary file and
renamed into place, so an interrupted run leaves no half-written file::

    python scripts/adapt_users.py ratings.csv --out top10.parquet --n 10
    python scripts/adapt_users.py ratings.parquet --model path/to/recommender --user-column uid
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import personalize as pz
from personalize.errors import PersonalizeError
from personalize.recommend import Columns


def read_frame(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pl.read_csv(path, separator="\t" if path.suffix == ".tsv" else ",")
    raise SystemExit(f"error: {path} must be a .csv, .tsv or .parquet file")


def write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    try:
        frame.write_parquet(staging) if path.suffix == ".parquet" else frame.write_csv(staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ratings", type=Path, help="CSV/TSV/Parquet file of user, item, rating rows")
    parser.add_argument("--out", type=Path, required=True, help="output .parquet or .csv")
    parser.add_argument("--model", default="movielens", help="shipped model name or saved folder (default movielens)")
    parser.add_argument("--n", type=int, default=10, help="recommendations per user")
    parser.add_argument("--user-column", default="user_id")
    parser.add_argument("--item-column", default="item_id")
    parser.add_argument("--rating-column", default="rating")
    parser.add_argument("--unknown-items", choices=("warn", "ignore", "raise"), default="warn")
    args = parser.parse_args(argv)
    if not args.ratings.is_file():
        raise SystemExit(f"error: {args.ratings} does not exist")
    try:
        recommender = pz.load(args.model)
        columns = Columns(user=args.user_column, item=args.item_column, rating=args.rating_column)
        ratings = read_frame(args.ratings)
        started = time.perf_counter()
        users = recommender.adapt_many(ratings, columns=columns, unknown_items=args.unknown_items)
        adapted = time.perf_counter() - started
        frames = [model.recommend(n=args.n).with_columns(pl.lit(user).alias(args.user_column))
                  for user, model in users.items()]
    except PersonalizeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = pl.concat(frames).select(args.user_column, pl.exclude(args.user_column))
    write_atomically(result, args.out)
    print(f"{len(users)} users adapted in {adapted:.2f} s ({1000 * adapted / max(1, len(users)):.2f} ms per user); "
          f"{result.height} rows written to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
