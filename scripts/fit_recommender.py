"""Meta-fit the shipped MovieLens recommender (``personalize.load("movielens")``) on the shipped split.

The ``movielens-users`` suite's split (seed 0) decides which users are for validation and test; the
recommender learns from every other user's ratings (heavy users included) and selects its training
step and ranking weight on the validation users. Each user model of ``--models`` (``built-in``: the
Bayesian matrix factorisation; ``bayes``: users as tasks of the engine's ``bayes`` learner, item text
through meta-learned LoRA beside the item's ALS vector) is meta-fitted, and the one with the lowest
validation MAE ships (:func:`personalize.recommend.selection.select_recommender`; every candidate's
score is in the saved record). ``--attributes age,gender,occupation`` makes the
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
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch

import personalize as pz
from personalize import data
from personalize.logs import show_logs
from personalize.provenance import cpu_flags, portable_args
from personalize.recommend import RecommenderConfig
from personalize.recommend.config import EngineUsersConfig
from personalize.recommend.selection import select_recommender
from personalize.tasks import load_suite


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("personalize/pretrained/movielens"))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=RecommenderConfig().steps, help="built-in model's steps")
    parser.add_argument("--engine-steps", type=int, default=EngineUsersConfig().steps,
                        help="meta-fit steps of the engine learner")
    parser.add_argument("--models", default="built-in,bayes",
                        help="comma-separated candidates: built-in, or an engine learner with a Gaussian head (bayes)")
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
    built_in = RecommenderConfig(steps=args.steps, seed=args.seed)
    candidates = {name: built_in if name == "built-in" else
                  replace(built_in, learner=name, engine=EngineUsersConfig(steps=args.engine_steps))
                  for name in (part.strip() for part in args.models.split(",")) if name}
    started = time.perf_counter()
    with show_logs(stream=sys.stdout, fmt="%(message)s"):  # the library's per-validation lines, as printed before
        recommender = select_recommender(train, items, candidates, validation=validation,
                                         users=users if attribute_columns else None,
                                         attribute_columns=attribute_columns or None,
                                         encoder=pz.load_encoder(max_length=32))
    seconds = time.perf_counter() - started
    recommender.record["run"] = {"command": "python " + " ".join(portable_args(sys.argv)),
                                 "seconds": round(seconds, 1), "split_seed": args.split_seed,
                                 "machine": f"{platform.processor() or platform.machine()}, "
                                            f"{torch.get_num_threads()} threads, CPU flags: {cpu_flags()}",
                                 "train_ratings": train.height, "validation_users": len(splits["val"])}
    recommender.save(args.out, overwrite=True)  # replaces a recommender at --out (e.g. the shipped one), nothing else
    selection = recommender.record["selection"]
    print(f"{recommender} -> {args.out} in {seconds:.1f} s; chosen {selection['chosen']!r} by validation MAE "
          + ", ".join(f"{name} {value:.4f}" for name, value in selection["validation_mae"].items())
          + f"; best step {recommender.record['best_step']}; ranking rating weight {recommender.rating_weight}")


if __name__ == "__main__":
    main()
