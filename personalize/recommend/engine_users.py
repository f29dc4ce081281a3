"""The recommender's users as tasks of an engine learner with a Gaussian head (``RecommenderConfig.learner``).

Meta-training is the engine's: the items are :class:`~personalize.recommend.user_tasks.UserItems`
(text, biased-ALS vector and bias), the learner is :func:`~personalize.recommend.user_tasks.user_learner`
(LoRA on the encoder's top layers and a regression head), and :func:`personalize.meta_fit` trains
its adapters, prior and noise across the training users (validation, checkpoints, resume).

Because the adapters of such a learner are shared by every user (only the head is the user's),
an item's feature row is the same for everyone: the catalogue is read through the encoder once, and
the learner becomes the recommender's :class:`~personalize.recommend.tables.ItemTables`. A user is
then adapted exactly as the learner adapts a task (the same Gaussian posterior, in weight form),
at the cost of a few small matrix products, and an item added later by its text gets its row from
the same adapted encoder, with its collaborative vector regressed from that text.

>>> import numpy as np, polars as pl
>>> from personalize.encoder import tiny_encoder
>>> from personalize.recommend.config import EngineUsersConfig, RecommenderConfig
>>> rng = np.random.default_rng(0)
>>> ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 20), "item_id": rng.integers(0, 30, 800),
...                         "rating": rng.integers(1, 6, 800).astype(float)})
>>> config = RecommenderConfig(factors=3, learner="bayes", engine=EngineUsersConfig(steps=2, val_every=2))
>>> texts = [f"film number {i}" for i in range(30)]
>>> learner, tables, record = meta_fit_tables(ratings.filter(pl.col("user_id") < 30),
...     ratings.filter(pl.col("user_id") >= 30), texts, tiny_encoder(), config)
>>> tables.features.shape == (30, learner.model.feature_size), record["best_step"] in (0, 2)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from personalize.encoder import Encoder
from personalize.engine.batch import collate_tasks
from personalize.engine.config import AdapterConfig
from personalize.errors import ConfigError, EpisodeError, require
from personalize.learners import MetaLearner, learner_class
from personalize.recommend.config import RecommenderConfig
from personalize.recommend.model import fit_text_regression
from personalize.recommend.tables import ItemTables
from personalize.recommend.user_tasks import (
    ItemVectorConfig,
    UserEpisodes,
    UserItems,
    UserTaskBatches,
    meta_fit_users,
    user_learner,
)
from personalize.tasks.interactions import InteractionPool

if TYPE_CHECKING:
    import polars as pl

CATALOGUE_CHUNK = 256  # item texts per pass through the adapted layers when building the tables


def meta_fit_tables(train: pl.DataFrame, validation: pl.DataFrame, texts: Sequence[str], encoder: Encoder,
                    config: RecommenderConfig, *, progress: bool = False,
                    checkpoint_dir: str | Path | None = None) -> tuple[MetaLearner, ItemTables, dict[str, Any]]:
    """Meta-train ``config.learner`` on users of ``train`` (validating on ``validation``), then read the
    catalogue through it into tables. Both frames hold user_id, item_id (catalogue positions, 0 to
    ``len(texts) - 1``) and rating. Returns the learner, its tables (no pick vectors yet) and the
    meta-fit record."""
    from personalize.meta_fit import MetaFitConfig

    require(config.learner is not None, "meta_fit_tables needs RecommenderConfig.learner (e.g. 'bayes')", ConfigError)
    settings = config.engine
    vectors = ItemVectorConfig(factors=config.factors, ridge=config.als_ridge, iterations=config.als_iterations,
                               seed=config.seed)
    items = UserItems.fit(train, texts, item_ids=list(range(len(texts))), config=vectors,
                          use_vectors=config.use_item_parameters, user_bias=settings.user_bias)
    top = range(max(0, encoder.num_layers - settings.adapted_layers), encoder.num_layers)
    adapter = AdapterConfig(rank=settings.rank, layers=tuple(top), target_modules=("query", "value"))
    torch.manual_seed(config.seed)
    learner = user_learner(config.learner, encoder, items, adapter=adapter, **_prior_settings(config))
    require(learner.gaussian_head() is not None,
            f"RecommenderConfig.learner={config.learner!r}: the recommender needs a learner whose users share "
            "the adapters and differ by a Gaussian head (e.g. 'bayes'); gradient and prototype learners adapt "
            "users through personalize.recommend.user_tasks.predict_users", ConfigError)
    validation_pool = InteractionPool(validation)
    require(len(validation_pool.tasks) > 0, "no validation user: pass validation= or more users", EpisodeError)
    episodes = UserEpisodes(InteractionPool(train), validation_pool, shots=settings.shots,
                            query_size=config.query_size, min_ratings=config.query_size + 1,
                            max_ratings=int(validation_pool.counts().max()))
    fit = MetaFitConfig(steps=settings.steps, meta_batch_size=settings.users_per_step, shots=settings.shots,
                        val_every=settings.val_every, val_episodes=settings.val_episodes,
                        outer_lr=settings.learning_rate, warmup_steps=min(settings.warmup_steps, settings.steps),
                        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                        time_budget_s=config.time_budget_s, seed=config.seed, progress=progress)
    learner = meta_fit_users(learner, items, episodes, fit)
    popularity = np.bincount(train["item_id"].to_numpy(), minlength=len(texts))
    record = dict(learner.record)
    record["best_val_mae"] = next((entry["val_mae"] for entry in record["history"]
                                   if entry["step"] == record["best_step"] and "val_mae" in entry), None)
    return learner, learner_tables(learner, items, popularity, config.text_ridge), record


def _prior_settings(config: RecommenderConfig) -> dict[str, float]:
    """The recommender's starting prior and noise, for a learner whose config has such fields."""
    known = {field.name for field in fields(learner_class(str(config.learner)).config_class)}
    wanted = {"initial_prior_std": config.initial_prior_std, "initial_noise_std": config.initial_noise_std}
    return {name: value for name, value in wanted.items() if name in known}


def learner_tables(learner: MetaLearner, items: UserItems, popularity: np.ndarray, text_ridge: float) -> ItemTables:
    """The item tables of a learner with a Gaussian head: every item's feature row (text through the
    adapted encoder, then its collaborative vector) and base score ``μ + b_i + head bias``.

    Items nobody rated in training (``popularity`` 0) get their collaborative vector and bias from
    their text, as items added later do (a ridge regression fitted on the rated items, each weighted
    by the square root of its rating count).
    """
    head = learner.gaussian_head()
    require(head is not None, f"the {learner.name!r} learner has no Gaussian head", ConfigError)
    assert head is not None
    batches = UserTaskBatches(learner, items)
    every = np.arange(len(items.item_ids))
    learner.eval()
    chunks = [every[start:start + CATALOGUE_CHUNK] for start in range(0, len(every), CATALOGUE_CHUNK)]
    features = torch.cat([learner.inference_features(batches.batch([chunk]).to(learner.encoder.device))[0]
                          for chunk in chunks]).cpu()
    text = features[:, : features.shape[1] - items.side_features]
    item_bias = torch.as_tensor(items.baseline, dtype=torch.float32) - float(items.global_mean)
    learned = items.vectors[:, : items.side_features - int(items.user_bias)]  # not the constant column
    targets = torch.cat([item_bias[:, None], learned], dim=1)
    rated = torch.as_tensor(popularity > 0)
    text_weights = fit_text_regression(text, targets, torch.as_tensor(popularity, dtype=torch.float32).sqrt(),
                                       text_ridge)
    from_text = _rows_from_text(text, text_weights, items.side_features)
    features = torch.where(rated[:, None], features, from_text)
    global_mean = torch.tensor(float(items.global_mean)) + head.bias
    base = global_mean + torch.where(rated, item_bias, (text @ text_weights)[:, 0])
    return ItemTables(features, base, text_weights, global_mean, head.prior_mean, head.prior_variance,
                      head.noise_variance, torch.zeros(len(every), 0), torch.zeros(0),
                      torch.zeros(len(head.prior_mean), 0))


def text_item_rows(learner: MetaLearner, tables: ItemTables, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature rows [n, D] and base scores [n] of items known by their text alone: the text through
    the adapted encoder, the collaborative vector and bias regressed from it (``tables.text_weights``)."""
    require(len(texts) > 0, "no item text given", ConfigError)
    side = learner.config.head.side_features
    batch = collate_tasks(learner.encoder, [list(texts)], [[0.0] * len(texts)], kind="regression",
                          side=[torch.zeros(len(texts), side)] if side else None)
    learner.eval()
    text = learner.inference_features(batch.to(learner.encoder.device))[0].cpu()[:, : tables.features.shape[1] - side]
    return _rows_from_text(text, tables.text_weights, side), tables.global_mean + (text @ tables.text_weights)[:, 0]


def _rows_from_text(text: torch.Tensor, text_weights: torch.Tensor, side: int) -> torch.Tensor:
    """Feature rows [n, D] from text features [n, H]: the text, the collaborative vector regressed from it,
    then the constant 1 of the user's bias when the side has a column more than the regression gives."""
    predicted = (text @ text_weights)[:, 1:]
    constant = torch.ones(len(text), side - predicted.shape[1])
    return torch.cat([text, predicted, constant], dim=1)
