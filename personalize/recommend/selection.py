"""Choose the recommender's user model on validation users: meta-fit each candidate, keep the best.

Every candidate (a :class:`~personalize.recommend.config.RecommenderConfig`: the built-in model, or
users on an engine learner, with any settings) is meta-fitted on the same training users and
scored on the same validation users with one measure, :func:`validation_score`: the MAE of the
posterior-mean predictions of each validation user's ``query_size`` held-out ratings, averaged over
support sizes 1, 3, 5, 10, 20 and all the rest (so a user with one rating weighs as much as one
with a hundred). The winner is returned with every candidate's score in ``record["selection"]``.

>>> import numpy as np, polars as pl
>>> from personalize.encoder import tiny_encoder
>>> from personalize.recommend.config import EngineUsersConfig
>>> rng = np.random.default_rng(0)
>>> items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
>>> ratings = pl.DataFrame({"user_id": np.repeat(np.arange(60), 20), "item_id": rng.integers(0, 30, 1200),
...                         "rating": rng.integers(1, 6, 1200)}).unique(["user_id", "item_id"])
>>> candidates = {"built-in": RecommenderConfig(factors=3, steps=4, val_every=2),
...               "bayes": RecommenderConfig(factors=3, learner="bayes", engine=EngineUsersConfig(steps=2))}
>>> chosen = select_recommender(ratings, items, candidates, encoder=tiny_encoder())
>>> sorted(chosen.record["selection"]["validation_mae"]), chosen.record["selection"]["chosen"] in candidates
(['bayes', 'built-in'], True)
"""

from __future__ import annotations

from typing import Any

import polars as pl

from personalize.errors import ConfigError, require
from personalize.frames import as_polars
from personalize.logs import get_logger
from personalize.recommend.config import RecommenderConfig
from personalize.recommend.inputs import Columns, checked_ratings
from personalize.recommend.recommender import Recommender, hold_out_users
from personalize.recommend.training import validation_batches, validation_mae
from personalize.tasks.interactions import InteractionPool

logger = get_logger(__name__)


def validation_score(recommender: Recommender, validation: Any, *, query_size: int = 10, seed: int = 0) -> float:
    """The recommender's MAE on validation users (a frame of user, item, rating; every item in its
    catalogue): ``query_size`` held-out ratings per user with more than that, support 1, 3, 5, 10, 20
    and all the rest, averaged over support sizes."""
    frame = checked_ratings(validation, recommender.columns)
    positions = recommender.catalogue.indices(frame["item_id"].to_list())
    pool = InteractionPool(frame.with_columns(pl.Series("item_id", positions)))
    settings = RecommenderConfig(query_size=query_size, seed=seed)
    return validation_mae(recommender.tables, validation_batches(pool, settings))


def select_recommender(ratings: Any, items: Any, candidates: dict[str, RecommenderConfig], *,
                       validation: Any = None, columns: Columns | None = None,
                       **meta_fit_options: Any) -> Recommender:
    """Meta-fit every candidate on ``ratings`` and return the one with the lowest
    :func:`validation_score` on ``validation`` (by default the users :meth:`Recommender.meta_fit`
    would hold out for the first candidate, held out once for all). ``meta_fit_options`` go to every
    :meth:`Recommender.meta_fit` (``encoder=``, ``users=``, ...; not ``checkpoint_dir=``, which a
    single run owns)."""
    require(isinstance(candidates, dict) and len(candidates) > 0 and
            all(isinstance(config, RecommenderConfig) for config in candidates.values()),
            "candidates must be a non-empty dict of name -> RecommenderConfig", ConfigError)
    require("checkpoint_dir" not in meta_fit_options,
            "select_recommender meta-fits several models: give checkpoint_dir= to Recommender.meta_fit of one",
            ConfigError)
    columns = columns or Columns()
    first = next(iter(candidates.values()))
    if validation is None:  # the users meta_fit would hold out, held out once for every candidate
        held_out = hold_out_users(checked_ratings(ratings, columns), first)[1]["user_id"].unique().to_list()
        frame = as_polars(ratings)
        is_held_out = pl.col(columns.user).is_in(held_out)
        ratings, validation = frame.filter(~is_held_out), frame.filter(is_held_out)
    scores: dict[str, float] = {}
    best: Recommender | None = None
    chosen = ""
    for name, config in candidates.items():
        recommender = Recommender.meta_fit(ratings, items, config, validation=validation, columns=columns,
                                           **meta_fit_options)
        scores[name] = validation_score(recommender, validation, query_size=first.query_size, seed=first.seed)
        logger.info(f"recommender candidate {name}: validation MAE {scores[name]:.4f}")
        if best is None or scores[name] < scores[chosen]:
            best, chosen = recommender, name
    assert best is not None
    best.record["selection"] = {"chosen": chosen, "validation_mae": scores,
                                "measure": "MAE of validation users' query ratings, mean over support sizes "
                                           "1, 3, 5, 10, 20 and all"}
    return best
