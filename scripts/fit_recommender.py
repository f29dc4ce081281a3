"""Meta-fit the shipped MovieLens recommender (``personalize.load("movielens")``) on the shipped split.

The ``movielens-users`` suite's split (seed 0) decides which users are for validation and test; the
recommender learns from every other user's ratings (heavy users included) and selects its training
step and ranking weight on the validation users. ``--attributes age,gender,occupation`` makes the
prior read those columns of the users table (the shipped model does not: on the benchmark's 5 splits
they did not help, see docs/recommend.md). Test users are never seen, so the benchmark's split 0
numbers hold for the shipped model::

    python scripts/fit_recommender.py --out personalize/pretrained/movielens
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import polars as pl
import torch

import personalize as pz
from personalize import data
from personalize.logs import show_logs
from personalize.recommend import Recommender, RecommenderConfig
from personalize.tasks import load_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("personalize/pretrained/movielens"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=RecommenderConfig().steps)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attributes", default="",
                        help="comma-separated columns of the users table the prior reads ('' for none)")
    args = parser.parse_args(argv)
    attribute_columns = [name for name in args.attributes.split(",") if name]
    torch.manual_seed(args.seed)
    tables = data.load("movielens-100k")
    ratings, items, users = tables["ratings"], tables["items"], tables["users"]
    splits = load_suite("movielens-users").splits(seed=args.split_seed)
    held_out = list(set(splits["val"]) | set(splits["test"]))
    train = ratings.filter(~pl.col("user_id").is_in(held_out))
    validation = ratings.filter(pl.col("user_id").is_in(list(splits["val"])))
    config = RecommenderConfig(steps=args.steps, seed=args.seed)
    started = time.perf_counter()
    with show_logs(stream=sys.stdout, fmt="%(message)s"):  # the library's per-validation lines, as printed before
        recommender = Recommender.meta_fit(train, items, config, validation=validation,
                                           users=users if attribute_columns else None,
                                           attribute_columns=attribute_columns or None,
                                           encoder=pz.load_encoder(max_length=32))
    seconds = time.perf_counter() - started
    recommender.record["run"] = {"command": f"python scripts/fit_recommender.py --split-seed {args.split_seed} "
                                            f"--steps {args.steps} --seed {args.seed} --attributes {args.attributes}",
                                 "seconds": round(seconds, 1), "split_seed": args.split_seed,
                                 "machine": f"{platform.processor() or platform.machine()}, "
                                            f"{torch.get_num_threads()} threads",
                                 "train_ratings": train.height, "validation_users": len(splits["val"])}
    recommender.save(args.out, overwrite=True)  # replaces a recommender at --out (e.g. the shipped one), nothing else
    print(f"{recommender} -> {args.out} in {seconds:.1f} s; best validation MAE "
          f"{recommender.record['best_val_mae']:.4f} at step {recommender.record['best_step']}; "
          f"ranking rating weight {recommender.rating_weight}")


if __name__ == "__main__":
    main()
