"""Meta-training the rating model: every step, a batch of users, each split into support and query.

A training user's ratings are shuffled; up to ``query_size`` of them (at most half) form the query
and the support is either all the rest (``full_support_share`` of the users) or a random number of
them from 1 up, capped at ``max_support``: so the prior is trained for a user with one rating as for
one with a hundred. The loss is the query's negative log-likelihood under each user's posterior
predictive. Every ``val_every`` steps the validation users are scored (query = 10 ratings, support
K of the others for K in ``VALIDATION_SHOTS``); the state with the best mean validation MAE is kept.
(User attributes are not trained here: their weights are fitted afterwards, in closed form, see
:func:`personalize.recommend.attributes.fit_attribute_weights`.)

>>> import numpy as np, polars as pl, torch
>>> from personalize.recommend.config import RecommenderConfig
>>> from personalize.recommend.model import RatingModel
>>> rng = np.random.default_rng(0)
>>> frame = pl.DataFrame({"user_id": np.repeat(np.arange(40), 15), "item_id": rng.integers(0, 30, 600),
...                       "rating": rng.integers(1, 6, 600).astype(float)})
>>> pool = InteractionPool(frame)
>>> config = RecommenderConfig(factors=4, steps=20, users_per_step=8, val_every=10)
>>> model = RatingModel(config, torch.nn.functional.normalize(torch.randn(30, 8), dim=-1), 3.0,
...                     item_bias=torch.zeros(30), item_vectors=0.1 * torch.randn(30, 4))
>>> record = train_rating_model(model, pool.restrict(range(30)), pool.restrict(range(30, 40)), config)
>>> [entry["step"] for entry in record["history"]]
[0, 10, 20]
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from personalize.engine.gaussian import gaussian_nll, grouped_gram_and_moment, weight_posterior
from personalize.errors import EpisodeError, require
from personalize.logs import get_logger
from personalize.recommend.attributes import ATTRIBUTE_RIDGES, AttributeTable, fit_attribute_weights
from personalize.recommend.config import RecommenderConfig
from personalize.recommend.model import RatingModel
from personalize.tasks.interactions import InteractionPool, melu_episodes

logger = get_logger(__name__)

PaddedRatings = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Episodes = tuple[PaddedRatings, PaddedRatings, torch.Tensor | None]
"""Support and query of a batch of users, and their attribute vectors (None without attributes)."""


def pad_ratings(items: Sequence[np.ndarray], ratings: Sequence[np.ndarray]) -> PaddedRatings:
    """Per-user item indices and ratings padded to one length: items [U, N], ratings [U, N], mask [U, N].

    >>> items, ratings, mask = pad_ratings([np.array([3, 4]), np.array([5])], [np.array([1., 2.]), np.array([3.])])
    >>> items.tolist(), mask.tolist()
    ([[3, 4], [5, 0]], [[1.0, 1.0], [1.0, 0.0]])
    """
    width = max(1, max((len(row) for row in items), default=0))
    item_tensor = torch.zeros(len(items), width, dtype=torch.long)
    rating_tensor = torch.zeros(len(items), width)
    mask = torch.zeros(len(items), width)
    for position, (row_items, row_ratings) in enumerate(zip(items, ratings)):
        item_tensor[position, : len(row_items)] = torch.as_tensor(row_items, dtype=torch.long)
        rating_tensor[position, : len(row_ratings)] = torch.as_tensor(row_ratings, dtype=torch.float32)
        mask[position, : len(row_items)] = 1.0
    return item_tensor, rating_tensor, mask


def sample_training_step(pool: InteractionPool, config: RecommenderConfig, rng: np.random.Generator
                         ) -> tuple[PaddedRatings, PaddedRatings]:
    """One meta-batch: ``users_per_step`` random users of ``pool``, each split into support and query."""
    counts = pool.counts()
    users = rng.choice(len(counts), size=config.users_per_step, replace=len(counts) < config.users_per_step)
    support_rows, query_rows = [], []
    for position in users:
        rows = rng.permutation(pool.rows_of(pool.tasks[position]))
        query_count = min(config.query_size, len(rows) // 2)
        most = min(len(rows) - query_count, config.max_support)
        take = most if rng.random() < config.full_support_share else int(rng.integers(1, most + 1))
        query_rows.append(rows[:query_count])
        support_rows.append(rows[query_count : query_count + take])
    support = pad_ratings([pool.items[rows] for rows in support_rows], [pool.ratings[rows] for rows in support_rows])
    query = pad_ratings([pool.items[rows] for rows in query_rows], [pool.ratings[rows] for rows in query_rows])
    return support, query


def held_out_episodes(pool: InteractionPool, config: RecommenderConfig, shots: int | None = None) -> list:
    """One episode per user with more than ``query_size`` ratings, however many: ``query_size``
    random ratings as the query, ``shots`` of the others (None = all) as the support."""
    most = int(pool.counts().max()) if len(pool.counts()) else 0
    return melu_episodes(pool, seed=config.seed, shots=shots, min_ratings=config.query_size + 1, max_ratings=most,
                         query_size=config.query_size)


VALIDATION_SHOTS = (1, 3, 5, 10, 20, None)
"""Support sizes of the validation episodes (None = all but the query): model selection weighs a
user with one rating as much as one with many."""


def validation_batches(pool: InteractionPool, config: RecommenderConfig,
                       attributes: AttributeTable | None = None) -> list[Episodes]:
    """Validation episodes at every size in ``VALIDATION_SHOTS`` (and 0 with ``attributes``): each
    user's query is ``query_size`` random ratings (the same at every size), the support K of the rest."""
    batches = []
    for shots in ((0,) if attributes is not None else ()) + VALIDATION_SHOTS:
        episodes = held_out_episodes(pool, config, shots)
        if episodes:
            batches.append((pad_ratings([e.support_items for e in episodes], [e.support_ratings for e in episodes]),
                            pad_ratings([e.query_items for e in episodes], [e.query_ratings for e in episodes]),
                            None if attributes is None else attributes.of([e.user for e in episodes])))
    require(len(batches) > 0, f"no validation user has more than {config.query_size} ratings", EpisodeError)
    return batches


@torch.no_grad()
def validation_mae(model: RatingModel, batches: list[Episodes]) -> float:
    """Mean absolute error of the posterior-mean predictions of the validation queries, averaged
    over the support sizes."""
    errors = []
    for support, query, attributes in batches:
        mean, _ = model.predict(model.posterior(*support, attributes=attributes), query[0])
        errors.append(float(((mean - query[1]).abs() * query[2]).sum() / query[2].sum()))
    return float(np.mean(errors))


def train_rating_model(model: RatingModel, train: InteractionPool, validation: InteractionPool,
                       config: RecommenderConfig, progress: bool = False) -> dict[str, Any]:
    """Meta-train ``model`` in place (it ends in its best validation state); returns the training record.

    ``train`` and ``validation`` hold item *indices* of ``model``'s catalogue, not item ids.
    Each validation is logged at INFO on the ``personalize`` logger; ``progress`` shows a tqdm bar.
    """
    from tqdm.auto import tqdm

    eligible = train.with_counts(2)
    require(len(eligible.tasks) > 0, "meta-training needs users with at least 2 ratings", EpisodeError)
    rng = np.random.default_rng(config.seed)
    batches = validation_batches(validation, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    history = [{"step": 0, "val_mae": validation_mae(model, batches)}]
    logger.info(f"step     0  val MAE {history[0]['val_mae']:.4f}")
    bar = tqdm(total=config.steps, disable=not progress, desc="meta-fit recommender", unit="step")
    best_mae, best_state, best_step, stale = history[0]["val_mae"], copy.deepcopy(model.state_dict()), 0, 0
    started = time.perf_counter()
    losses: list[float] = []
    items_count = len(model.item_bias)
    for step in range(1, config.steps + 1):
        support, query = sample_training_step(eligible, config, rng)
        hidden = torch.rand(items_count, generator=_torch_generator(rng)) < config.item_dropout
        posterior = model.posterior(*support, hidden=hidden[support[0]])
        mean, variance = model.predict(posterior, query[0], hidden=hidden[query[0]])
        loss = gaussian_nll(mean, variance, query[1], query[2]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        out_of_time = config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s
        if step % config.val_every == 0 or step == config.steps or out_of_time:
            mae = validation_mae(model, batches)
            history.append({"step": step, "train_nll": float(np.mean(losses)), "val_mae": mae,
                            "seconds": round(time.perf_counter() - started, 2)})
            losses = []
            logger.info(f"step {step:5d}  train nll {history[-1]['train_nll']:.4f}  val MAE {mae:.4f}")
            bar.set_postfix(val_mae=f"{mae:.4f}")
            if mae < best_mae:
                best_mae, best_state, best_step, stale = mae, copy.deepcopy(model.state_dict()), step, 0
            else:
                stale += 1
            if out_of_time or (config.patience and stale >= config.patience):
                break
    bar.close()
    model.load_state_dict(best_state)
    return {"history": history, "best_step": best_step, "best_val_mae": best_mae,
            "train_seconds": round(time.perf_counter() - started, 2), "train_users": len(eligible.tasks),
            "validation_users": int(batches[-1][1][0].shape[0])}


@torch.no_grad()
def fit_user_attributes(model: RatingModel, train: InteractionPool, validation: InteractionPool,
                        attributes: AttributeTable, config: RecommenderConfig) -> dict[str, Any]:
    """Set ``model.attribute_weights`` after meta-training, in closed form: every training user is
    adapted with the learned prior, their posterior means are regressed on their attributes
    (:func:`~personalize.recommend.attributes.fit_attribute_weights`), and the ridge with the best
    validation MAE (support sizes 0, 1, 3, ... all) wins; "none" (no attribute weights) competes too,
    so the attributes are kept only where they help validation users. Returns the selection record.
    """
    size = model.prior_mean.shape[0]
    users = list(train.tasks)
    groups = torch.as_tensor(np.repeat(np.arange(len(users)), train.counts()))
    rows = np.concatenate([train.rows_of(user) for user in users])
    items = torch.as_tensor(train.items[rows], dtype=torch.long)
    features, base = model.item_features(items)
    residuals = torch.as_tensor(train.ratings[rows], dtype=torch.float32) - base
    posterior = weight_posterior(*grouped_gram_and_moment(features, residuals, groups, len(users)), model.prior_mean,
                                 model.prior_variance, model.noise_variance, covariance=False)
    vectors = attributes.of(users)
    batches = validation_batches(validation, config, attributes)
    model.attribute_weights.copy_(torch.zeros(size, vectors.shape[1]))
    scores: dict[str, float] = {"none": validation_mae(model, batches)}
    candidates = {"none": model.attribute_weights.clone()}
    for ridge in ATTRIBUTE_RIDGES:
        candidates[str(ridge)] = fit_attribute_weights(vectors, posterior.mean - model.prior_mean, ridge)
        model.attribute_weights.copy_(candidates[str(ridge)])
        scores[str(ridge)] = validation_mae(model, batches)
    best = min(scores, key=lambda name: (scores[name], name != "none"))
    model.attribute_weights.copy_(candidates[best])
    logger.info(f"user attributes: ridge {best}, validation MAE {scores[best]:.4f} (none {scores['none']:.4f})")
    return {"ridge": best, "validation_mae": scores, "training_users": len(users)}


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**31)))
