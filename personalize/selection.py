"""Automatic model selection: try the families and a small inner-loop grid, keep the best.

Each candidate learner is meta-trained on the suite's meta-train tasks with an equal share of the
time budget. Optimization-based learners are then scored on the meta-validation episodes for every
(inner steps, inner learning rate) pair of a small grid (adaptation-time settings: no retraining);
the other families are scored as trained. The best candidate by meta-validation accuracy (or MAE
for rating tasks) is returned with the whole score table in ``learner.record["selection"]``, so it
is saved with the checkpoint.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.tasks.synthetic import synthetic_suite
>>> config = SelectionConfig(learners=("protonet", "fomaml"), inner_steps=(1, 3), inner_lrs=(0.1,),
...                          budget_s=60, fit=MetaFitConfig(steps=3, val_every=3, progress=False))
>>> best = select_learner(synthetic_suite(num_tasks=20), tiny_encoder(), config)
>>> sorted({row["learner"] for row in best.record["selection"]["candidates"]})
['fomaml', 'protonet']
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from personalize.encoder import Encoder
from personalize.engine.episode_batches import episode_batches
from personalize.errors import require
from personalize.learners import LearnerConfig, MetaLearner, create_learner, learner_class
from personalize.learners.maml import MAML
from personalize.logs import get_logger
from personalize.meta_fit import BatchMaker, MetaFitConfig, meta_fit

logger = get_logger(__name__)


@dataclass(frozen=True)
class SelectionConfig:
    """What to try and for how long."""

    learners: tuple[str, ...] = ("fomaml", "meta-sgd", "reptile", "protonet", "bayes")
    """Learner names to meta-train (second-order "maml" is slow on CPU: add it when there is time)."""
    inner_steps: tuple[int, ...] = (1, 3, 5)
    """Adaptation steps tried for optimization-based learners."""
    inner_lrs: tuple[float, ...] = (0.03, 0.1, 0.3)
    """Adaptation step sizes tried for optimization-based learners (not Meta-SGD: it learns its own)."""
    budget_s: float = 600.0
    """Total seconds of meta-training, shared equally by the candidates."""
    fit: MetaFitConfig = field(default_factory=MetaFitConfig)
    """Outer-loop settings of each candidate (its time budget is set from ``budget_s``)."""
    learner_fields: dict[str, Any] = field(default_factory=dict)
    """Config fields given to every candidate (e.g. ``adapter`` and ``head``)."""
    val_episodes: int = 64
    """Meta-validation episodes each candidate is scored on."""

    def __post_init__(self) -> None:
        require(len(self.learners) >= 1, "SelectionConfig.learners must name at least one learner")
        for name in self.learners:
            learner_class(name)  # raises for unknown names
        require(self.budget_s > 0, f"SelectionConfig.budget_s must be > 0, got {self.budget_s!r}")
        require(all(s >= 0 for s in self.inner_steps) and all(lr > 0 for lr in self.inner_lrs),
                "SelectionConfig.inner_steps must be >= 0 and inner_lrs > 0")


def select_learner(suite: Any, encoder: Encoder, config: SelectionConfig | None = None, *,
                   make_batches: BatchMaker | None = None) -> MetaLearner:
    """Meta-train every candidate, score the grid on meta-validation, return the best learner."""
    config = config or SelectionConfig()
    shots = config.fit.shots or tuple(suite.spec.shots)
    val_shots = config.fit.val_shots or sorted(shots)[len(shots) // 2]
    val_episodes = suite.episodes("val", shots=val_shots, n=config.val_episodes, seed=config.fit.seed + 20_000)
    support, query = (make_batches or episode_batches)(encoder, val_episodes)
    share = config.budget_s / len(config.learners)
    rows: list[dict[str, Any]] = []
    best: tuple[float, MetaLearner] | None = None
    started = time.perf_counter()
    for name in config.learners:
        learner = create_learner(name, encoder, **config.learner_fields)
        fit_started = time.perf_counter()
        meta_fit(learner, suite, dataclasses.replace(config.fit, time_budget_s=share), make_batches=make_batches)
        fit_seconds = time.perf_counter() - fit_started
        for variant in _variants(learner, config):
            scores = {k: v.mean().item() for k, v in variant.evaluate(support, query).items()}
            rows.append({"learner": name, **_inner_settings(variant), **scores, "fit_seconds": round(fit_seconds, 1)})
            logger.info(f"candidate {name} {_inner_settings(variant)}: "
                        + ", ".join(f"val {k} {v:.4f}" for k, v in scores.items()))
            goodness = scores["accuracy"] if "accuracy" in scores else -scores["mae"]
            if best is None or goodness > best[0]:
                best = (goodness, variant)
    assert best is not None
    chosen = best[1]
    logger.info(f"selected {chosen.name} {_inner_settings(chosen)}")
    chosen.record = {**chosen.record, "selection": {
        "chosen": {"learner": chosen.name, **_inner_settings(chosen)},
        "metric": "accuracy" if chosen.kind == "classification" else "mae",
        "val_shots": val_shots, "val_episodes": config.val_episodes,
        "seconds": round(time.perf_counter() - started, 1), "candidates": rows,
    }}
    return chosen


def _variants(learner: MetaLearner, config: SelectionConfig) -> list[MetaLearner]:
    """The trained learner under each adaptation setting of the grid (same meta-parameters)."""
    if not isinstance(learner, MAML):
        return [learner]
    learning_rates = (learner.config.inner_lr,) if learner.name == "meta-sgd" else config.inner_lrs
    variants = []
    for steps in config.inner_steps:
        for lr in learning_rates:
            variant_config: LearnerConfig = dataclasses.replace(learner.config, inner_steps=steps, inner_lr=lr)
            variants.append(_with_config(learner, variant_config))
    return variants


def _with_config(learner: MetaLearner, config: LearnerConfig) -> MetaLearner:
    variant = type(learner)(learner.encoder, config)
    with torch.no_grad():
        variant.load_state_dict(learner.state_dict())
    variant.record = dict(learner.record)
    return variant


def _inner_settings(learner: MetaLearner) -> dict[str, Any]:
    if isinstance(learner, MAML):
        return {"inner_steps": learner.config.inner_steps, "inner_lr": learner.config.inner_lr}
    return {"inner_steps": None, "inner_lr": None}

