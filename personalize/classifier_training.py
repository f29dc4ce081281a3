"""Meta-training a shippable text classifier: the one code path behind ``personalize meta-fit``.

:class:`TrainingConfig` holds every setting with the defaults the shipped ``sentiment`` model was
trained with; :func:`meta_train` meta-fits one learner (or selects among several) on a suite;
:func:`train_classifier` wraps the result as a :class:`~personalize.sentiment.SentimentClassifier`
(its zero-shot state from meta-train examples, its prior strength chosen on meta-validation
episodes by :func:`choose_prior_strength`) with the training record beside the weights. The command
line and ``scripts/meta_train.py`` only parse arguments into a :class:`TrainingConfig`.

Meta-training reads the suite's meta-train tasks; meta-validation tasks choose the best step, the
learner (with several) and the prior strength; meta-test tasks are never read.

>>> config = TrainingConfig(learners=("fomaml",), inner_steps=1, steps=3)
>>> config.learners, config.steps, config.inner_steps
(('fomaml',), 3, 1)
>>> TrainingConfig(learners=("protonet",), inner_steps=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: inner_steps/inner_lr set the inner loop of one optimization learner (...), not of...
>>> default_adapter_layers(6), default_adapter_layers(12), default_adapter_layers(2)
((2, 3, 4, 5), (4, 5, 6, 7, 8, 9, 10, 11), (0, 1))
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personalize.errors import ConfigError, PersonalizeError, require
from personalize.logs import get_logger

if TYPE_CHECKING:
    from personalize.encoder import Encoder
    from personalize.learners import MetaLearner

LOG = get_logger(__name__)
PRIOR_GRID = (0, 1, 2, 4, 8, 16, 32, 64)
"""Prior strengths tried by :func:`choose_prior_strength`."""
OPTIMIZATION_LEARNERS = "maml, fomaml, meta-sgd, reptile"


def default_adapter_layers(num_layers: int) -> tuple[int, ...]:
    """The encoder layers that get adapters by default: the top two thirds (MiniLM-L6: 2-5)."""
    return tuple(range(num_layers // 3, num_layers))


@dataclass(frozen=True)
class TrainingConfig:
    """Everything :func:`meta_train` and :func:`train_classifier` need; defaults are the shipped model's."""

    suite: str = "clothing-sentiment"
    """Suite name or path of a suite .toml file."""
    learners: tuple[str, ...] = ("protonet",)
    """One learner, or several to select among on meta-validation (within ``budget_s``)."""
    select: bool = False
    """Select even with one learner (over its inner-loop grid)."""
    steps: int = 600
    budget_s: float | None = 2700.0
    """Seconds of meta-training at most (shared by the candidates when selecting); None: no limit."""
    meta_batch_size: int = 4
    query_per_class: int = 8
    """Training queries per class of each episode."""
    outer_lr: float = 1e-3
    inner_steps: int | None = None
    """Gradient steps of adaptation (one optimization learner only); None: the learner's default."""
    inner_lr: float | None = None
    rank: int = 8
    layers: tuple[int, ...] | None = None
    """Encoder layers with adapters; None: :func:`default_adapter_layers` of the encoder."""
    max_length: int = 64
    """Tokens per text."""
    val_every: int = 50
    val_episodes: int = 32
    reference_per_class: int = 256
    """Meta-train examples per class behind the zero-shot classifier (metric and model-based learners)."""
    prior_episodes: int = 32
    """Meta-validation episodes per K (2 and 8) that choose a prototype classifier's prior strength."""
    checkpoint_dir: str | None = None
    """Write ``last/`` and ``best/`` here while training; a rerun resumes from it."""
    checkpoint_every: int | None = None
    """Steps between writes of ``last/`` (default: every validation)."""
    encoder: str | None = None
    """Encoder folder or name (default: the bundled all-MiniLM-L6-v2)."""
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        from personalize.learners import learner_class

        require(isinstance(self.learners, tuple) and len(self.learners) >= 1,
                f"learners must be a non-empty tuple of learner names, got {self.learners!r}")
        for name in self.learners:
            learner_class(name)  # unknown names are refused naming the known ones
        for field in ("steps", "meta_batch_size", "query_per_class", "rank", "max_length", "val_every",
                      "val_episodes", "reference_per_class", "prior_episodes"):
            value = getattr(self, field)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                    f"{field} must be an int >= 1, got {value!r}")
        require(self.budget_s is None or self.budget_s > 0, f"budget_s must be > 0 or None, got {self.budget_s!r}")
        require(self.outer_lr > 0, f"outer_lr must be > 0, got {self.outer_lr!r}")
        require(self.layers is None or (len(self.layers) > 0 and all(
            isinstance(layer, int) and layer >= 0 for layer in self.layers)),
            f"layers must be None or a non-empty tuple of layer indices >= 0, got {self.layers!r}")
        if self.inner_steps is not None or self.inner_lr is not None:
            one_optimizer = (len(self.learners) == 1 and not self.select
                             and learner_class(self.learners[0]).family == "optimization")
            require(one_optimizer, f"inner_steps/inner_lr set the inner loop of one optimization learner "
                                   f"({OPTIMIZATION_LEARNERS}), not of {','.join(self.learners)}"
                                   + (" with selection" if self.select else "") + "; selection tries its own grid")
        require(self.budget_s is not None or not self.selecting,
                "selection shares budget_s among its candidates: give a budget in seconds")
        require(self.inner_steps is None or self.inner_steps >= 0, f"inner_steps must be >= 0, got {self.inner_steps}")
        require(self.inner_lr is None or self.inner_lr > 0, f"inner_lr must be > 0, got {self.inner_lr}")

    @property
    def selecting(self) -> bool:
        """Whether :func:`meta_train` selects (several learners, or ``select``)."""
        return self.select or len(self.learners) > 1


def meta_train(config: TrainingConfig, suite: Any, encoder: Encoder) -> MetaLearner:
    """Meta-fit ``config.learners[0]`` (or select among ``config.learners``) on ``suite``; returns the best."""
    from personalize.engine.config import AdapterConfig, HeadConfig
    from personalize.learners import create_learner
    from personalize.meta_fit import MetaFitConfig, meta_fit
    from personalize.selection import SelectionConfig, select_learner
    from personalize.tasks import ClassificationSuiteSpec

    head = (HeadConfig(num_classes=suite.spec.ways) if isinstance(suite.spec, ClassificationSuiteSpec)
            else HeadConfig(kind="regression"))
    layers = config.layers if config.layers is not None else default_adapter_layers(encoder.num_layers)
    fields: dict[str, Any] = {"adapter": AdapterConfig(rank=config.rank, layers=layers), "head": head,
                              "seed": config.seed}
    fields.update({name: value for name, value in (("inner_steps", config.inner_steps),
                                                   ("inner_lr", config.inner_lr)) if value is not None})
    fit = MetaFitConfig(steps=config.steps, meta_batch_size=config.meta_batch_size, outer_lr=config.outer_lr,
                        train_query_per_class=config.query_per_class if head.kind == "classification" else None,
                        val_every=config.val_every, val_episodes=config.val_episodes,
                        checkpoint_dir=config.checkpoint_dir, checkpoint_every=config.checkpoint_every,
                        seed=config.seed)
    if config.selecting:
        return select_learner(suite, encoder, SelectionConfig(learners=config.learners, budget_s=config.budget_s,
                                                              fit=fit, learner_fields=fields,
                                                              val_episodes=config.val_episodes))
    learner = create_learner(config.learners[0], encoder, **fields)
    return meta_fit(learner, suite, dataclasses.replace(fit, time_budget_s=config.budget_s))


def choose_prior_strength(classifier: Any, suite: Any, seed: int = 0,
                          episodes: int = 32) -> dict[str, dict[str, float]] | None:
    """Set a prototype classifier's prior strength from ``episodes`` meta-validation episodes per K (2 and 8).

    One-standard-error rule: the smallest strength whose accuracy is within one standard error of
    the best one's. Meta-validation domains resemble the training ones, so they favour the
    transferred prototypes more than an unseen domain would; the rule leans toward the support.
    Returns the scores (also kept in ``classifier.record["prior_strength_scores"]``), or None for a
    learner without prototypes (nothing to choose).
    """
    from personalize.sentiment import tune_prior_strength

    if "prototypes" not in classifier.zero_shot_state:
        return None
    scores = tune_prior_strength(classifier, suite, episodes=episodes, grid=PRIOR_GRID, seed=seed)
    best = max(scores.values(), key=lambda score: score["mean"])
    chosen = min((strength for strength, score in scores.items() if score["mean"] >= best["mean"] - best["se"]),
                 key=float)
    classifier.prior_strength = float(chosen)
    classifier.record["prior_strength_scores"] = scores
    LOG.info("meta-validation accuracy by prior strength: %s; best ± s.e. %.4f ± %.4f; chose %s",
             ", ".join(f"{strength}: {score['mean']:.4f}" for strength, score in scores.items()),
             best["mean"], best["se"], chosen)
    return scores


def check_companion(folder: str | Path, learners: tuple[str, ...]) -> None:
    """Refuse, before any work, a saved classifier that cannot take the tasks of 3+ classes for ``learners``."""
    from personalize.checkpoint import read_learner_document
    from personalize.learners import learner_class
    from personalize.sentiment import read_classifier_document

    require(not all(learner_class(name).any_number_of_classes for name in learners),
            f"multiclass: {', '.join(learners)} already take(s) any number of classes; no companion needed")
    try:
        read_classifier_document(folder)
        companion = read_learner_document(Path(folder) / "learner")["learner"]
    except PersonalizeError as error:
        raise ConfigError(f"multiclass: {error}") from error
    require(learner_class(companion).any_number_of_classes,
            f"multiclass: {folder} holds a {companion} classifier, whose head has a fixed number of classes; it "
            "needs one that takes any number (protonet)")


def trains_classifier(suite: Any) -> bool:
    """Whether ``suite`` gives a shippable classifier: classification episodes holding every class
    (``ways`` equal to the number of classes), so a class id names the same class in every task."""
    from personalize.tasks import ClassificationSuiteSpec

    spec = suite.spec
    return isinstance(spec, ClassificationSuiteSpec) and spec.ways == len(spec.classes)


def train_classifier(config: TrainingConfig, *, suite: Any = None, encoder: Encoder | None = None,
                     multiclass: str | Path | None = None, command: str | None = None) -> Any:
    """Meta-train on ``config.suite`` and build the shippable classifier (not saved: call ``.save``).

    ``suite`` and ``encoder`` default to loading ``config.suite`` and ``config.encoder``.
    ``multiclass`` is a saved prototype classifier that takes the tasks with more classes than the
    trained learner's head (it is copied into the result). ``command`` is recorded as it is given
    (the command line passes its own, without machine paths).
    """
    from personalize import encoder as encoders
    from personalize import tasks
    from personalize.provenance import machine
    from personalize.sentiment import SentimentClassifier, reference_examples

    if multiclass is not None:
        check_companion(multiclass, config.learners)
    started = time.perf_counter()
    suite = suite if suite is not None else tasks.load_suite(config.suite)
    require(trains_classifier(suite), f"suite {suite.name!r} gives no shippable classifier: it needs classification "
                                      "episodes holding every class (ways equal to the number of classes); "
                                      "meta_train gives its learner")
    if encoder is None:
        encoder = encoders.load_encoder(config.encoder, device=config.device, max_length=config.max_length)
    companion = SentimentClassifier.load(multiclass, encoder=encoder) if multiclass is not None else None
    learner = meta_train(config, suite, encoder)
    texts, ids = reference_examples(suite, per_class=config.reference_per_class, seed=config.seed)
    record = {**learner.record, "command": command, "suite": suite.name, "seed": config.seed,
              "training": {name: list(value) if isinstance(value, tuple) else value
                           for name, value in dataclasses.asdict(config).items()},
              "wall_seconds": round(time.perf_counter() - started, 1), "device": str(encoder.device),
              "machine": machine()}
    labels = tuple(rule.name for rule in suite.spec.classes)
    classifier = SentimentClassifier.build(learner, texts, ids, labels=labels, record=record, multiclass=companion)
    choose_prior_strength(classifier, suite, config.seed, config.prior_episodes)
    return classifier


def retune_prior(folder: str | Path, *, suite: Any = None, encoder: Encoder | None = None, seed: int = 0,
                 episodes: int = 32, device: str = "auto", command: str | None = None) -> Any:
    """Re-choose the prior strength of the classifier saved in ``folder`` on its training suite's
    meta-validation episodes (or ``suite``'s); returns the classifier (not saved). ``encoder``
    defaults to the one it was trained on."""
    from personalize import tasks
    from personalize.sentiment import SentimentClassifier

    classifier = SentimentClassifier.load(folder, encoder=encoder, device=device)
    require("prototypes" in classifier.zero_shot_state, f"{folder} holds a {classifier.learner.name} classifier: "
                                                        "the prior strength applies to prototype learners only")
    if suite is None:
        name = classifier.record.get("suite")
        require(isinstance(name, str), f"{folder}: its record names no training suite, so there are no "
                                       "meta-validation episodes to choose the prior strength on")
        suite = tasks.load_suite(name)
    choose_prior_strength(classifier, suite, seed, episodes)
    classifier.record["prior_command"] = command
    return classifier


__all__ = ["PRIOR_GRID", "TrainingConfig", "check_companion", "choose_prior_strength", "default_adapter_layers",
           "meta_train", "retune_prior", "train_classifier", "trains_classifier"]
