"""Users as engine tasks on MovieLens-100K: every engine family against ALS on the same user splits.

Each user is a task of the engine (``personalize.recommend.user_tasks``): the frozen MiniLM reads
the item texts through meta-learned LoRA adapters on its top two layers, and the regression head
reads the adapted text features beside the item's biased-ALS vector; targets are residuals from the
item baseline. For each split seed the ``movielens-users`` suite splits the users 8:1:1; the item
vectors and meta-training use every user outside validation and test, the validation users pick
the best step of each family and the family that ships (lowest validation MAE), the test users are
scored (MAE on the 10 query ratings, support = the rest or K of the rest). Rows: each family, the
text-only ablation of the best family (no item vectors), biased ALS with fold-in and the bias
baseline on the same item vectors. Writes ``recommend-engine.{md,json}`` into ``--out-dir``::

    python scripts/bench_user_engine.py --splits 0 --families bayes,protonet,fomaml --steps 60
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from personalize import data
from personalize.encoder import load_encoder
from personalize.meta_fit import MetaFitConfig
from personalize.provenance import cpu_flags, machine, portable_args
from personalize.recommend.baselines import BASELINES
from personalize.recommend.metrics import mae, mean_ci
from personalize.recommend.user_tasks import (
    UserEpisodes,
    UserItems,
    UserTaskBatches,
    meta_fit_users,
    predict_users,
    user_learner,
)
from personalize.tasks import load_suite
from personalize.tasks.interactions import InteractionPool

SETTINGS = {"bayes": {"initial_prior_std": 0.3, "initial_noise_std": 0.9}, "protonet": {},
            "fomaml": {"inner_steps": 3, "inner_lr": 0.1}, "meta-sgd": {"inner_steps": 3, "inner_lr": 0.1}}
SHOTS = (1, 5, 20)
TEXT_ONLY = "text only (no item vectors)"


def score(predict, episodes, items: UserItems) -> dict[str, float]:
    """Test MAE and the time per user of adapting and predicting."""
    supports = [(items.positions(e.support_items.tolist()), e.support_ratings.astype(float)) for e in episodes]
    targets = [items.positions(e.query_items.tolist()) for e in episodes]
    started = time.perf_counter()
    predicted = predict(supports, targets)
    seconds = time.perf_counter() - started
    truth = np.concatenate([e.query_ratings for e in episodes])
    return {"mae": mae(np.concatenate(predicted), truth), "ms_per_user": 1000 * seconds / len(episodes)}


def run_split(seed: int, families: list[str], steps: int, encoder) -> dict:
    tables = data.load("movielens-100k")
    ratings, item_frame = tables["ratings"], tables["items"]
    suite = load_suite("movielens-users")
    splits = suite.splits(seed=seed)
    held = set(splits["val"]) | set(splits["test"])
    train = ratings.filter(~pl.col("user_id").is_in(list(held)))
    texts, ids = item_frame["text"].to_list(), item_frame["item_id"].to_list()
    items = UserItems.fit(train, texts, item_ids=ids)
    episodes = UserEpisodes(InteractionPool(train), suite.split_pool("val", seed))
    fit = MetaFitConfig(steps=steps, meta_batch_size=16, shots=(1, 3, 5, 10, 20), val_every=max(1, steps // 4),
                        val_episodes=64, outer_lr=1e-2, warmup_steps=min(10, steps), progress=False, seed=seed)
    tests = {"full": suite.episodes("test", shots=None, split_seed=seed)}
    tests |= {f"K={k}": suite.episodes("test", shots=k, split_seed=seed) for k in SHOTS}
    result: dict = {"rows": {}, "validation_mae": {}, "fit_seconds": {}}

    def engine_rows(name: str, row: str, user_items: UserItems) -> None:
        torch.manual_seed(seed)
        started = time.perf_counter()
        learner = meta_fit_users(user_learner(name, encoder, user_items, **SETTINGS[name]), user_items, episodes, fit)
        result["fit_seconds"][row] = time.perf_counter() - started
        best = learner.record["best_step"]
        result["validation_mae"][row] = next(h["val_mae"] for h in learner.record["history"]
                                             if h["step"] == best and "val_mae" in h)
        result["validation_mae"][row + ", step 0"] = learner.record["history"][0]["val_mae"]
        batches = UserTaskBatches(learner, user_items)

        def predict(supports, targets):
            return predict_users(learner, user_items, supports, targets, batches=batches)
        result["rows"][row] = {name_: score(predict, eps, user_items) for name_, eps in tests.items()}

    for name in families:
        engine_rows(name, name, items)
    chosen = min(families, key=lambda name: result["validation_mae"][name])
    result["chosen"] = chosen
    text_only = UserItems.fit(train, texts, item_ids=ids, use_vectors=False)
    engine_rows(chosen, f"{chosen}, {TEXT_ONLY}", text_only)
    users, positions = train["user_id"].to_numpy(), items.positions(train["item_id"].to_list())
    values = train["rating"].to_numpy().astype(float)
    for name in ("mf (als)", "bias"):
        baseline = BASELINES[name]().fit(users, positions, values, len(ids))

        def predict(supports, targets, baseline=baseline):
            return [baseline.predict(s, r, t) for (s, r), t in zip(supports, targets)]
        result["rows"][name] = {name_: score(predict, eps, items) for name_, eps in tests.items()}
    return result


def markdown(document: dict) -> str:
    splits = document["per_split"]
    columns = ["full"] + [f"K={k}" for k in SHOTS]
    lines = ["# Users as engine tasks: MovieLens-100K", "",
             "Generated by `scripts/bench_user_engine.py` (do not edit by hand).", "",
             f"Command: `{document['command']}`; split seeds {document['splits']}; {document['machine']}; "
             f"{document['date']}.", "",
             "Test MAE on the 10 query ratings of each test user (MeLU protocol), mean over splits "
             "(± 95% interval over splits when there are several). `ms/user`: adapting and predicting, "
             "full support, on this machine's CPU, in one run (compare rows, not absolute times).", "",
             "| method | " + " | ".join(columns) + " | ms/user | validation MAE (best step / step 0) |",
             "|" + "---|" * (len(columns) + 3)]
    for row in splits[0]["rows"]:
        cells = []
        for column in columns:
            mean, half = mean_ci([s["rows"][row][column]["mae"] for s in splits])
            cells.append(f"{mean:.3f}" + (f" ± {half:.3f}" if len(splits) > 1 else ""))
        ms = np.mean([s["rows"][row]["full"]["ms_per_user"] for s in splits])
        if row in splits[0]["validation_mae"]:
            best = np.mean([s["validation_mae"][row] for s in splits])
            start = np.mean([s["validation_mae"][row + ", step 0"] for s in splits])
            validation = f"{best:.3f} / {start:.3f}"
        else:
            validation = "-"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {ms:.2f} | {validation} |")
    chosen = [s["chosen"] for s in splits]
    lines += ["", f"Family chosen on validation users, per split: {', '.join(chosen)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", default="0", help="comma-separated user-split seeds")
    parser.add_argument("--families", default="bayes,protonet,fomaml", help="engine learners, comma-separated")
    parser.add_argument("--steps", type=int, default=60, help="meta-training steps per family")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    families = [name.strip() for name in args.families.split(",") if name.strip()]
    unknown = sorted(set(families) - set(SETTINGS))
    if unknown or not families:
        parser.error(f"unknown families {unknown}; choose among {sorted(SETTINGS)}")
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    encoder = load_encoder()
    seeds = [int(seed) for seed in args.splits.split(",")]
    per_split = [run_split(seed, families, args.steps, encoder) for seed in seeds]
    document = {"command": "python scripts/bench_user_engine.py " + shlex.join(portable_args(sys.argv[1:])),
                "splits": seeds, "machine": f"{machine(encoder)}, CPU flags: {cpu_flags()}",
                "date": datetime.date.today().isoformat(),
                "per_split": per_split}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "recommend-engine.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out_dir / "recommend-engine.md").write_text(markdown(document))
    print(markdown(document))


if __name__ == "__main__":
    main()
