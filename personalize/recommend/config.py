"""The recommender's settings: what the rating model contains and how it is meta-trained.

>>> RecommenderConfig(factors=16).feature_size
17
>>> RecommenderConfig(item_dropout=1.5)
Traceback (most recent call last):
...
personalize.errors.ConfigError: RecommenderConfig.item_dropout must be in [0, 1), got 1.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from personalize.errors import require


@dataclass(frozen=True)
class EngineUsersConfig:
    """Users as tasks of an engine learner (``RecommenderConfig.learner``): its adapters and its outer loop."""

    steps: int = 60
    """Outer steps of :func:`personalize.meta_fit` (each one meta-batch of training users)."""
    users_per_step: int = 16
    """Users per meta-batch."""
    learning_rate: float = 1e-2
    """Peak outer learning rate (AdamW, warm-up then cosine)."""
    warmup_steps: int = 10
    """Steps of linear learning-rate warm-up."""
    shots: tuple[int, ...] = (1, 3, 5, 10, 20)
    """Support sizes of the training episodes (a random one per episode)."""
    val_every: int = 15
    """Steps between validations (the best validation's state is kept)."""
    val_episodes: int = 64
    """Validation users per validation."""
    adapted_layers: int = 2
    """LoRA sits on this many of the encoder's top layers (query and value); the layers below run
    once per item text."""
    rank: int = 4
    """LoRA rank."""
    user_bias: bool = True
    """A constant 1 after each item's collaborative vector, so that each user has a bias weight of
    their own (on split 0 of the benchmark it lowered the test MAE by 0.001 to 0.004 at every K)."""

    def __post_init__(self) -> None:
        for name in ("steps", "users_per_step", "warmup_steps", "val_every", "val_episodes", "adapted_layers", "rank"):
            value = getattr(self, name)
            least = 0 if name == "warmup_steps" else 1
            require(isinstance(value, int) and not isinstance(value, bool) and value >= least,
                    f"EngineUsersConfig.{name} must be an int >= {least}, got {value!r}")
        require(self.learning_rate > 0, f"EngineUsersConfig.learning_rate must be > 0, got {self.learning_rate!r}")
        shots = tuple(self.shots) if isinstance(self.shots, list | tuple) else self.shots
        require(isinstance(shots, tuple) and len(shots) > 0 and all(isinstance(k, int) and k >= 1 for k in shots),
                f"EngineUsersConfig.shots must be a non-empty list of ints >= 1, got {self.shots!r}")
        object.__setattr__(self, "shots", shots)


@dataclass(frozen=True)
class RecommenderConfig:
    """Rating model ``r = base_i + [1, z_i]·θ_user``; ``θ_user`` has a meta-learned Gaussian prior."""

    # --- the model ---------------------------------------------------------------------------------
    factors: int = 10
    """Size of the item vector z_i a user's taste weights read (plus one weight for the user's bias)."""
    use_text: bool = True
    """Item text through the frozen encoder, regressed onto the items' own bias and vector: what scores
    new items (and items nobody rated in training)."""
    use_item_parameters: bool = True
    """A bias and vector per item rated in training, from matrix factorisation of the log (collaborative);
    False scores every item from its text alone."""
    item_dropout: float = 0.1
    """Chance that an item is scored from its text alone in a meta-training step, so that the prior
    also fits items that are new."""
    meta_user_share: float = 0.3
    """Share of the training users kept out of the warm start and used to meta-train the prior: a
    user whose ratings fitted the item vectors looks easier to predict than a new one."""
    als_ridge: float = 10.0
    """Ridge of the matrix factorisation that gives the items' own vectors."""
    als_iterations: int = 15
    """Alternating least-squares rounds of that factorisation."""
    text_ridge: float = 1.0
    """Ridge of the regression from item text to the items' own parameters (what new items get)."""
    implicit_factors: int = 20
    """Size of the PureSVD item vectors that rank items by how likely a user is to pick them."""
    attribute_min_users: int = 10
    """User attributes (``meta_fit(users=...)``): a categorical value needs this many training users
    for its own indicator; rarer values share one."""
    attribute_bins: int = 5
    """User attributes: numeric columns are cut into this many quantile bins of the training users."""
    initial_prior_std: float = 0.3
    """Starting prior standard deviation of each taste weight."""
    initial_noise_std: float = 0.9
    """Starting rating noise standard deviation."""

    learner: str | None = None
    """None: the built-in Bayesian matrix factorisation above (:mod:`personalize.recommend.model`).
    A learner name with a Gaussian head (``"bayes"``): users are tasks of that engine learner, and an
    item's feature row is its text read by the encoder through meta-learned LoRA adapters, followed by
    its collaborative vector (:mod:`personalize.recommend.engine_users`); meta-trained by
    :func:`personalize.meta_fit` with the settings in ``engine``."""
    engine: EngineUsersConfig = field(default_factory=EngineUsersConfig)
    """Adapters and outer loop of the engine learner (used when ``learner`` is set)."""

    # --- meta-training (the built-in model) --------------------------------------------------------
    steps: int = 600
    """Meta-training steps (each one meta-batch of users)."""
    users_per_step: int = 64
    """Users per meta-batch."""
    learning_rate: float = 0.02
    """Adam learning rate."""
    query_size: int = 10
    """Ratings per training user held out as the query (at most half of the user's ratings)."""
    max_support: int = 100
    """Most support ratings per training user and step (heavy users are subsampled)."""
    full_support_share: float = 0.5
    """Share of training users whose support is all their non-query ratings; the others get a random
    number of them from 1 up, so the prior is trained for every support size."""
    val_every: int = 100
    """Steps between evaluations on the validation users (the best evaluation's state is kept)."""
    patience: int = 8
    """Stop after this many evaluations without a better validation MAE (0 = never stop early)."""
    validation_fraction: float = 0.1
    """Share of eligible users held out for validation when ``meta_fit`` is given no validation frame."""
    time_budget_s: float | None = None
    """Stop after this many seconds of training (None = no limit)."""
    text_batch_size: int = 128
    """Item texts per encoder batch when embedding the catalogue."""
    seed: int = 0
    """Seed of the initial parameters, the episode sampling and the validation split."""

    def __post_init__(self) -> None:
        for name in ("factors", "steps", "users_per_step", "query_size", "max_support", "val_every", "text_batch_size",
                     "als_iterations", "implicit_factors", "attribute_min_users", "attribute_bins"):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    f"RecommenderConfig.{name} must be an int >= 1, got {value!r}")
        require(self.use_text or self.use_item_parameters,
                "RecommenderConfig: use_text and use_item_parameters cannot both be False (no item features)")
        require(0.0 <= self.item_dropout < 1.0,
                f"RecommenderConfig.item_dropout must be in [0, 1), got {self.item_dropout!r}")
        require(0.0 <= self.meta_user_share < 1.0,
                f"RecommenderConfig.meta_user_share must be in [0, 1), got {self.meta_user_share!r}")
        require(0.0 <= self.full_support_share <= 1.0,
                f"RecommenderConfig.full_support_share must be in [0, 1], got {self.full_support_share!r}")
        require(0.0 < self.validation_fraction < 1.0,
                f"RecommenderConfig.validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        for name in ("als_ridge", "text_ridge", "initial_prior_std", "initial_noise_std", "learning_rate"):
            require(getattr(self, name) > 0, f"RecommenderConfig.{name} must be > 0, got {getattr(self, name)!r}")
        require(isinstance(self.patience, int) and self.patience >= 0,
                f"RecommenderConfig.patience must be an int >= 0, got {self.patience!r}")
        require(self.time_budget_s is None or self.time_budget_s > 0,
                f"RecommenderConfig.time_budget_s must be None or > 0, got {self.time_budget_s!r}")
        require(self.learner is None or (isinstance(self.learner, str) and self.learner != ""),
                f"RecommenderConfig.learner must be None or a learner name such as 'bayes', got {self.learner!r}")
        require(self.learner is None or self.use_text,
                "RecommenderConfig: an engine learner reads the item text; use_text=False needs learner=None")
        if isinstance(self.engine, dict):
            object.__setattr__(self, "engine", EngineUsersConfig(**self.engine))
        require(isinstance(self.engine, EngineUsersConfig),
                f"RecommenderConfig.engine must be an EngineUsersConfig, got {type(self.engine).__name__}")

    @property
    def feature_size(self) -> int:
        """Length of an item's feature row: a constant 1 (the user bias) and the item vector."""
        return self.factors + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RecommenderConfig:
        unknown = sorted(set(raw) - {field.name for field in fields(cls)})
        require(not unknown, f"RecommenderConfig: unknown field(s) {unknown}")
        return cls(**raw)
