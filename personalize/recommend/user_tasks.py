"""Users as tasks of the engine: a user's ratings are regression examples whose text is the item's.

Each example is one rated item. Its input is the item's text, read by the frozen encoder through
the learner's LoRA adapters, and beside the text the item's collaborative vector (biased-ALS item
factors and item bias, fitted on the training users' ratings; ``HeadConfig.side_features``). Its
target is the rating's residual from the item baseline ``μ + b_i`` (training mean plus the item's
shrunk bias), so a learner starts from what the item alone predicts and learns the user's part. Any
engine learner then meta-learns across training
users, as it does across sentiment domains, and fits a new user from a few ratings:

- ``bayes``: the closed-form Gaussian posterior over the head (the same code as for sentiment);
- ``fomaml`` / ``meta-sgd``: gradient steps on head and adapters from the meta-learned init (the
  MeLU local update);
- ``protonet``: kernel regression over the user's rated items.

:func:`meta_fit_users` trains one through :func:`personalize.meta_fit` (validation, checkpoints,
resume, time budget); :func:`predict_users` scores many users at once.

>>> import numpy as np, polars as pl
>>> from personalize.encoder import tiny_encoder
>>> from personalize.meta_fit import MetaFitConfig
>>> rng = np.random.default_rng(0)
>>> ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 20), "item_id": rng.integers(0, 30, 800),
...                         "rating": rng.integers(1, 6, 800)})
>>> items = UserItems.fit(ratings, [f"film number {i}" for i in range(30)], item_ids=list(range(30)),
...                       config=ItemVectorConfig(factors=3, iterations=2))
>>> items.vectors.shape
torch.Size([30, 4])
>>> train, val = (InteractionPool(ratings.filter(pl.col("user_id") < 30)),
...               InteractionPool(ratings.filter(pl.col("user_id") >= 30)))
>>> learner = user_learner("bayes", tiny_encoder(), items)
>>> fit = MetaFitConfig(steps=2, meta_batch_size=4, shots=(3,), val_every=2, val_episodes=4, progress=False)
>>> learner = meta_fit_users(learner, items, UserEpisodes(train, val, query_size=5), fit)
>>> predicted = predict_users(learner, items, [(np.array([1, 2]), np.array([5.0, 1.0]))], [np.array([3, 4, 5])])
>>> predicted[0].shape, bool(((predicted[0] >= 1) & (predicted[0] <= 5)).all())
((3,), True)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.prefix_cache import PrefixCache
from personalize.errors import ConfigError, EpisodeError, SchemaError, require
from personalize.frames import as_polars, require_columns
from personalize.learners import MetaLearner, create_learner
from personalize.recommend.als import fit_biased_als
from personalize.tasks.episodes import Rng, as_rng
from personalize.tasks.interactions import InteractionEpisode, InteractionPool, melu_episodes

ADAPTED_TOP_LAYERS = 2
"""By default LoRA (rank 4, query and value) sits on the encoder's top two layers; the layers below
run once per item text and are cached."""
PREDICT_EXAMPLES = 8192  # padded examples (users x items) per batch in predict_users


@dataclass(frozen=True)
class ItemVectorConfig:
    """The collaborative item vectors fed beside the text: biased ALS on the training ratings."""

    factors: int = 10
    """Item factors per item (the side features are these and then the item bias)."""
    ridge: float = 10.0
    """L2 penalty of every ALS ridge solve."""
    iterations: int = 15
    """ALS rounds."""
    seed: int = 0
    """Seed of the initial ALS item factors."""

    def __post_init__(self) -> None:
        require(isinstance(self.factors, int) and self.factors >= 0,
                f"ItemVectorConfig.factors must be an int >= 0, got {self.factors!r}")
        require(self.ridge > 0, f"ItemVectorConfig.ridge must be > 0, got {self.ridge!r}")
        require(isinstance(self.iterations, int) and self.iterations >= 1,
                f"ItemVectorConfig.iterations must be an int >= 1, got {self.iterations!r}")


@dataclass
class UserItems:
    """The items users rate: their texts, their collaborative vectors and the training mean rating.

    ``vectors`` is [items, factors + 1] (ALS item factors, then the item bias), or [items, 0] when
    the learner reads the text alone; ``baseline`` [items] is ``μ + b_i``, what every target is
    measured from; ``rating_range`` clips predictions.
    """

    item_ids: list[Hashable]
    texts: list[str]
    vectors: torch.Tensor
    baseline: np.ndarray
    rating_range: tuple[float, float]
    global_mean: float = 0.0
    """``μ``, the mean training rating (``baseline`` is ``μ + b_i``)."""
    user_bias: bool = False
    """Whether the last column of ``vectors`` is a constant 1, so that a head's weight on it is the
    user's own bias (how much higher or lower they rate than the item baseline)."""

    def __post_init__(self) -> None:
        self.baseline = np.asarray(self.baseline, dtype=np.float64)
        require(len(self.item_ids) == len(self.texts) == len(self.vectors) == len(self.baseline),
                "UserItems: item_ids, texts, vectors and baseline need one entry per item")
        self.index = {item: position for position, item in enumerate(self.item_ids)}
        require(len(self.index) == len(self.item_ids), "UserItems: item ids must be unique", SchemaError)

    @classmethod
    def fit(cls, ratings: Any, texts: Sequence[str], *, item_ids: Sequence[Hashable],
            config: ItemVectorConfig | None = None, columns: tuple[str, str, str] = ("user_id", "item_id", "rating"),
            use_vectors: bool = True, user_bias: bool = False) -> UserItems:
        """Fit the item vectors on a (user, item, rating) frame of training users.

        ``use_vectors=False`` keeps no collaborative vector (the text-only ablation); ``user_bias``
        appends a constant 1 to every item's vector (see :attr:`user_bias`).
        """
        config = config or ItemVectorConfig()
        user_column, item_column, rating_column = columns
        frame = as_polars(ratings)
        require_columns(frame, list(columns), what="rating")
        require(len(texts) == len(item_ids), f"{len(item_ids)} item ids but {len(texts)} texts")
        positions = _positions({item: position for position, item in enumerate(item_ids)},
                               frame[item_column].to_list())
        values = frame[rating_column].to_numpy().astype(np.float64)
        require(len(values) > 0 and bool(np.isfinite(values).all()), "ratings must be finite and not empty",
                SchemaError)
        users, user_index = np.unique(frame[user_column].to_numpy(), return_inverse=True)
        factors = fit_biased_als(user_index, positions, values, len(users), len(item_ids), factors=config.factors,
                                 ridge=config.ridge, iterations=config.iterations, seed=config.seed)
        vectors = (torch.cat([torch.as_tensor(factors.item_factors, dtype=torch.float32),
                              torch.as_tensor(factors.item_bias, dtype=torch.float32)[:, None]], dim=1)
                   if use_vectors else torch.zeros(len(item_ids), 0))
        if user_bias:
            vectors = torch.cat([vectors, torch.ones(len(item_ids), 1)], dim=1)
        return cls(list(item_ids), list(texts), vectors, factors.global_mean + factors.item_bias,
                   (float(values.min()), float(values.max())), float(factors.global_mean), user_bias)

    @property
    def side_features(self) -> int:
        return int(self.vectors.shape[1])

    def positions(self, items: Sequence[Hashable]) -> np.ndarray:
        """Positions of item ids; SchemaError naming the unknown ones."""
        return _positions(self.index, items)


def _positions(index: dict[Hashable, int], items: Sequence[Hashable]) -> np.ndarray:
    missing = [item for item in items if item not in index]
    require(not missing, f"{len(missing)} item id(s) have no text or vector, e.g. {missing[:5]}", SchemaError)
    return np.array([index[item] for item in items], dtype=np.int64)


def user_learner(name: str, encoder: Encoder, items: UserItems, *, adapter: AdapterConfig | None = None,
                 **settings: Any) -> MetaLearner:
    """An engine learner for user tasks: regression head on the item text and the item's vector.

    ``adapter`` defaults to rank-4 LoRA on the top :data:`ADAPTED_TOP_LAYERS` layers.

    >>> from personalize.encoder import tiny_encoder
    >>> items = UserItems([1, 2], ["a", "b"], torch.zeros(2, 3), np.array([3.5, 3.0]), (1.0, 5.0))
    >>> learner = user_learner("fomaml", tiny_encoder(), items, adapter=AdapterConfig(rank=2, layers=(1,)))
    >>> learner.config.head.side_features, learner.init["head_weight"].shape
    (3, torch.Size([1, 35]))
    """
    if adapter is None:
        top = range(max(0, encoder.num_layers - ADAPTED_TOP_LAYERS), encoder.num_layers)
        adapter = AdapterConfig(rank=4, layers=tuple(top), target_modules=("query", "value"))
    head = HeadConfig(kind="regression", side_features=items.side_features)
    return create_learner(name, encoder, adapter=adapter, head=head, **settings)


class UserTaskBatches:
    """Item positions and ratings of many users to TaskBatches: cached prefix states plus item vectors.

    Also the ``make_batches`` of :func:`personalize.meta_fit` for interaction episodes whose pool
    holds item ids. Each item text's frozen lower layers run once, the first time it is drawn.
    """

    def __init__(self, learner: MetaLearner, items: UserItems) -> None:
        require(learner.kind == "regression", f"user tasks need a regression head, got {learner.kind!r}", ConfigError)
        require(learner.config.head.side_features == items.side_features,
                f"the learner's head takes {learner.config.head.side_features} side features, "
                f"the items have {items.side_features}", ConfigError)
        self.items = items
        self.cache = PrefixCache(learner.model, lambda rows: [items.texts[row] for row in rows])

    def batch(self, positions: Sequence[np.ndarray], ratings: Sequence[np.ndarray] | None = None) -> TaskBatch:
        """One task per user: their item positions and ratings (None: targets unused, e.g. to predict)."""
        positions = [np.asarray(p, dtype=np.int64) for p in positions]
        values = ratings if ratings is not None else [self.items.baseline[p] for p in positions]
        targets = [(np.asarray(v, dtype=np.float64) - self.items.baseline[p]).tolist()
                   for p, v in zip(positions, values)]
        side = self.items.vectors if self.items.side_features else None
        return self.cache.batch(positions, targets, kind="regression", side=side)

    def __call__(self, encoder: Encoder, episodes: Sequence[InteractionEpisode]) -> tuple[TaskBatch, TaskBatch]:
        if encoder is not self.cache.model.encoder:
            raise ConfigError("the user task batches were built for another encoder")
        require(all(isinstance(e, InteractionEpisode) for e in episodes) and len(episodes) > 0,
                "user task batches need a non-empty list of interaction episodes", ConfigError)
        require(all(len(e.support_rows) > 0 for e in episodes),
                "an engine learner needs at least one support rating per user (K >= 1)", ConfigError)
        support = self.batch([self.items.positions(e.support_items.tolist()) for e in episodes],
                             [e.support_ratings for e in episodes])
        query = self.batch([self.items.positions(e.query_items.tolist()) for e in episodes],
                           [e.query_ratings for e in episodes])
        return support, query


@dataclass(frozen=True)
class UserEpisodesSpec:
    shots: tuple[int, ...]
    query_size: int


class UserEpisodes:
    """The episode source :func:`personalize.meta_fit` draws from: training users and validation users.

    Training episodes take a random user with enough ratings for ``shots`` support and
    ``query_size`` query ratings; validation episodes follow the MeLU protocol (users with
    ``min_ratings`` to ``max_ratings`` ratings, seeded query) over the validation pool.
    """

    def __init__(self, train: InteractionPool, val: InteractionPool, *, shots: Sequence[int] = (1, 3, 5, 10, 20),
                 query_size: int = 10, min_ratings: int = 13, max_ratings: int = 100) -> None:
        require(len(shots) > 0 and all(isinstance(k, int) and k >= 1 for k in shots),
                f"UserEpisodes.shots must be integers >= 1, got {shots!r}", ConfigError)
        require(query_size >= 1, f"UserEpisodes.query_size must be >= 1, got {query_size}", ConfigError)
        self.pools = {"train": train, "val": val}
        self.spec = UserEpisodesSpec(tuple(shots), query_size)
        self.min_ratings, self.max_ratings = max(min_ratings, query_size + 1), max_ratings
        self._eligible: dict[int, np.ndarray] = {}

    def _pool(self, split: str) -> InteractionPool:
        require(split in self.pools, f"UserEpisodes has splits 'train' and 'val', not {split!r}", ConfigError)
        return self.pools[split]

    def sample(self, split: str, *, shots: int, rng: Rng, **unused: Any) -> InteractionEpisode:
        """One episode of a random user of ``split`` with at least ``shots + query_size`` ratings.

        When no user has that many, a user with more than ``query_size`` ratings is drawn and their
        support is every rating beyond the query (fewer than ``shots``).
        """
        pool, rng, query = self._pool(split), as_rng(rng), self.spec.query_size
        counts = pool.counts()
        if shots not in self._eligible:
            eligible = np.flatnonzero(counts >= shots + query)
            self._eligible[shots] = eligible if len(eligible) else np.flatnonzero(counts > query)
        eligible = self._eligible[shots]
        if len(eligible) == 0:
            raise EpisodeError(f"no {split} user has more than {query} ratings (the query size): an episode needs "
                               "at least one support rating beyond the query")
        position = int(eligible[rng.integers(len(eligible))])
        shots = min(shots, int(counts[position]) - query)
        return pool.sample(pool.tasks[position], shots=shots, query_size=query, rng=rng)

    def episodes(self, split: str, *, shots: int | None, n: int | None = None, seed: int = 0,
                 **unused: Any) -> list[InteractionEpisode]:
        """Seeded MeLU-protocol episodes of ``split`` (at most ``n``)."""
        episodes = melu_episodes(self._pool(split), seed=seed, shots=shots, min_ratings=self.min_ratings,
                                 max_ratings=self.max_ratings, query_size=self.spec.query_size)
        if not episodes:
            raise EpisodeError(f"no {split} user has {self.min_ratings} to {self.max_ratings} ratings with "
                               f"{shots or 1} beyond the {self.spec.query_size} query ratings; give more such users "
                               "or lower the query size")
        return episodes[:n] if n is not None else episodes


def meta_fit_users(learner: MetaLearner, items: UserItems, episodes: UserEpisodes, config: Any = None) -> MetaLearner:
    """Meta-train ``learner`` across the training users through :func:`personalize.meta_fit`."""
    from personalize.meta_fit import MetaFitConfig, meta_fit

    config = config or MetaFitConfig(shots=episodes.spec.shots)
    return meta_fit(learner, episodes, config, make_batches=UserTaskBatches(learner, items))


def predict_users(learner: MetaLearner, items: UserItems, supports: Sequence[tuple[np.ndarray, np.ndarray]],
                  targets: Sequence[np.ndarray], *, batches: UserTaskBatches | None = None,
                  max_examples: int = PREDICT_EXAMPLES) -> list[np.ndarray]:
    """Adapt to each user's support (item positions, ratings) and predict their target positions.

    Users go through in batches of about ``max_examples`` padded examples; predictions are clipped
    to the rating range.
    """
    require(len(supports) == len(targets), f"{len(supports)} supports but {len(targets)} target lists", ConfigError)
    for user, (positions, ratings) in enumerate(supports):
        require(len(positions) >= 1 and len(positions) == len(ratings),
                f"user {user}: an engine learner needs >= 1 support rating, one per item "
                f"(got {len(positions)} items, {len(ratings)} ratings)", ConfigError)
    batches = batches or UserTaskBatches(learner, items)
    low, high = items.rating_range
    predictions: list[np.ndarray] = []
    learner.eval()
    for part in _chunks([max(len(s[0]), len(t), 1) for s, t in zip(supports, targets)], max_examples):
        support = batches.batch([supports[u][0] for u in part], [supports[u][1] for u in part])
        wanted = [np.asarray(targets[u], dtype=np.int64) for u in part]
        asked = [t if len(t) else np.zeros(1, dtype=np.int64) for t in wanted]
        outputs = learner.predict(learner.adapt(support), batches.batch(asked)).outputs.float().cpu().numpy()
        for row, target in zip(outputs, wanted):
            predictions.append(np.clip(row[:len(target)] + items.baseline[target], low, high))
    return predictions


def _chunks(widths: list[int], budget: int) -> list[list[int]]:
    """Consecutive users grouped so that users x the widest of them stays within ``budget``."""
    chunks: list[list[int]] = []
    current: list[int] = []
    widest = 0
    for user, width in enumerate(widths):
        if current and max(widest, width) * (len(current) + 1) > budget:
            chunks.append(current)
            current, widest = [], 0
        current.append(user)
        widest = max(widest, width)
    return chunks + ([current] if current else [])
