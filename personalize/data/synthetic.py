"""Realistic synthetic rating logs of any size, drawn from a fitted recommender, for scale tests.

No public package ships a rating log much larger than MovieLens-100K with item texts, so scale is
measured on logs generated from a fitted model (by default the shipped ``movielens``):

- items: the model's own items, plus (when more are asked for) new ones whose taste features, base
  score and pick vector are copies of random real items with noise of a tenth of each column's spread;
  item popularity follows a Zipf law as real catalogues do;
- users: taste weights drawn from the model's meta-learned prior; the number of ratings per user is
  long-tailed (log-normal with MovieLens' spread, at least 1, mean ``ratings_per_user``); items are
  drawn by popularity (a user rates an item once);
- ratings: the model's predictive mean plus its noise, rounded to the model's rating levels.

:func:`write_synthetic` writes the log as parquet parts sorted by user (``ratings/``) and the model
over the synthetic catalogue (``model/``), so ``adapt-users DIR/ratings --model DIR/model`` runs.

>>> import personalize as pz
>>> rec = pz.load("movielens")
>>> model = synthetic_recommender(rec, items=2000, seed=0)
>>> len(model.catalogue), model.tables.features.shape[1] == rec.tables.features.shape[1]
(2000, True)
>>> log = synthetic_ratings(model, users=range(100), ratings_per_user=20, seed=0)
>>> sorted(log.columns), log["user_id"].n_unique(), 10 < log.height / 100 < 30
(['item_id', 'rating', 'user_id'], 100, True)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from personalize.errors import ConfigError, require

if TYPE_CHECKING:
    import polars as pl

LENGTH_SIGMA = 0.9
"""Spread of log(ratings per user): MovieLens-100K's per-user counts have about this spread."""
ZIPF_EXPONENT = 0.9
USERS_PER_PART = 100_000


def synthetic_recommender(recommender: Any, *, items: int | None = None, seed: int = 0) -> Any:
    """A copy of ``recommender`` over a catalogue of ``items`` items (its own first, then synthetic ones)."""
    from personalize.recommend.catalogue import Catalogue
    from personalize.recommend.recommender import ItemTables, Recommender

    tables = recommender.tables
    own = tables.features.shape[0]
    items = own if items is None else items
    require(isinstance(items, int) and items >= 2, f"items must be an int >= 2, got {items!r}", ConfigError)
    rng = np.random.default_rng(seed)
    copies = torch.as_tensor(rng.integers(0, own, size=max(0, items - own)))

    def extended(values: torch.Tensor) -> torch.Tensor:
        values = values.float()
        if items <= own:
            return values[:items].clone()
        spread = values.std(dim=0, keepdim=True) if values.dim() > 1 else values.std()
        noise = torch.as_tensor(rng.normal(size=(len(copies), *values.shape[1:])), dtype=torch.float32)
        new = values[copies] + 0.1 * spread * noise
        if values.dim() > 1 and new.shape[1]:
            constant = torch.all(values == 1, dim=0)
            new[:, constant] = 1.0  # the constant feature (the user's bias) stays 1
        return torch.cat([values, new])

    ids = list(recommender.catalogue.ids[:min(items, own)]) + [f"synthetic-{i}" for i in range(max(0, items - own))]
    if items > own and all(isinstance(item, int) for item in ids[:own]):
        start = max(recommender.catalogue.ids) + 1
        ids = ids[:own] + list(range(start, start + items - own))
    texts = list(recommender.catalogue.texts[:own])[:items] + [f"Synthetic item {i}." for i in range(items - own)]
    popularity = _zipf_popularity(items, rng)
    catalogue = Catalogue(ids=ids, texts=texts, titles=None, popularity=popularity)
    new_tables = ItemTables(features=extended(tables.features), base=extended(tables.base),
                            text_weights=tables.text_weights.clone(), global_mean=tables.global_mean.clone(),
                            prior_mean=tables.prior_mean.clone(), prior_variance=tables.prior_variance.clone(),
                            noise_variance=tables.noise_variance.clone(), implicit=extended(tables.implicit),
                            implicit_default=tables.implicit_default.clone(),
                            attribute_weights=tables.attribute_weights.clone())
    record = {"synthetic": {"from": repr(recommender), "items": items, "seed": seed}}
    return Recommender(config=recommender.config, columns=recommender.columns, catalogue=catalogue, tables=new_tables,
                       rating_range=recommender.rating_range, encoder_record=copy.deepcopy(recommender.encoder_record),
                       record=record, rating_weight=recommender.rating_weight,
                       rating_levels=recommender.rating_levels, attributes=recommender.attributes,
                       learner=recommender._learner)


def _zipf_popularity(items: int, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, items + 1) ** ZIPF_EXPONENT
    return np.round(1e6 * rng.permutation(weights) / weights.sum()).astype(np.int64) + 1


def synthetic_ratings(recommender: Any, *, users: Sequence[int], ratings_per_user: float = 20.0,
                      seed: int = 0) -> pl.DataFrame:
    """A log of user_id, item_id, rating for ``users`` (sorted by user), drawn from ``recommender``."""
    import polars as pl

    require(ratings_per_user >= 1, f"ratings_per_user must be >= 1, got {ratings_per_user!r}", ConfigError)
    users = np.asarray(users, dtype=np.int64)
    rng = np.random.default_rng([seed, int(users[0]) if len(users) else 0])
    tables = recommender.tables
    items = tables.features.shape[0]
    mu = np.log(ratings_per_user) - LENGTH_SIGMA**2 / 2
    lengths = np.clip(np.round(rng.lognormal(mu, LENGTH_SIGMA, size=len(users))), 1, items // 2).astype(np.int64)
    cumulative = np.cumsum(recommender.catalogue.popularity / recommender.catalogue.popularity.sum())
    picked = np.minimum(np.searchsorted(cumulative, rng.random(int(lengths.sum()))), items - 1)
    owners = np.repeat(np.arange(len(users)), lengths)
    unique = np.unique(owners * items + picked)  # a user rates an item once; sorted by user
    owners, picked = unique // items, unique % items
    taste = tables.prior_mean.numpy() + np.sqrt(tables.prior_variance.numpy()) * rng.normal(
        size=(len(users), len(tables.prior_mean)))
    features, base = tables.features.numpy(), tables.base.numpy()
    mean = base[picked] + np.einsum("rd,rd->r", features[picked], taste[owners])
    ratings = mean + np.sqrt(float(tables.noise_variance)) * rng.normal(size=len(mean))
    levels = recommender.rating_levels
    if levels:
        levels = np.asarray(levels)
        ratings = levels[np.abs(ratings[:, None] - levels[None, :]).argmin(1)]
    else:
        ratings = np.clip(ratings, *recommender.rating_range)
    ids = np.asarray(recommender.catalogue.ids)
    return pl.DataFrame({"user_id": users[owners], "item_id": ids[picked], "rating": ratings.astype(np.float64)})


def write_synthetic(out: str | Path, recommender: Any, *, users: int, items: int | None = None,
                    ratings_per_user: float = 20.0, seed: int = 0, log: Any = print) -> Path:
    """Write ``out/ratings/part-*.parquet`` (users 0..users-1, sorted) and ``out/model/``; returns ``out``."""
    from personalize.files import staged_folder

    require(isinstance(users, int) and users >= 1, f"users must be an int >= 1, got {users!r}", ConfigError)
    out = Path(out)
    require(not out.exists() or not any(out.iterdir()),
            f"{out} already holds files: choose an empty or new folder for the synthetic data", ConfigError)
    model = synthetic_recommender(recommender, items=items, seed=seed)
    model.save(out / "model")
    rows = 0
    with staged_folder(out / "ratings") as staging:
        for number, start in enumerate(range(0, users, USERS_PER_PART)):
            part = synthetic_ratings(model, users=range(start, min(users, start + USERS_PER_PART)),
                                     ratings_per_user=ratings_per_user, seed=seed)
            part.write_parquet(staging / f"part-{number:05d}.parquet")
            rows += part.height
            log(f"  users {start:,}-{min(users, start + USERS_PER_PART) - 1:,}: {rows:,} ratings so far")
    log(f"wrote {rows:,} ratings of {users:,} users over {len(model.catalogue):,} items to {out}")
    return out


__all__ = ["synthetic_ratings", "synthetic_recommender", "write_synthetic"]
