"""The meta-learners, one file per family, and a registry to build them by name.

>>> from personalize.encoder import tiny_encoder
>>> sorted(LEARNERS)
['bayes', 'fomaml', 'maml', 'meta-sgd', 'pooled', 'protonet', 'reptile']
>>> learner = create_learner("protonet", tiny_encoder(), distance="euclidean")
>>> learner.family, learner.config.distance
('metric', 'euclidean')
"""

from __future__ import annotations

from typing import Any

from personalize.encoder import Encoder
from personalize.errors import ConfigError
from personalize.learners.base import LearnerConfig, MetaLearner, Prediction, TaskState
from personalize.learners.bayesian import BayesianConfig, BayesianHead
from personalize.learners.maml import FOMAML, MAML, FOMAMLConfig, MAMLConfig
from personalize.learners.meta_sgd import MetaSGD, MetaSGDConfig
from personalize.learners.pooled import Pooled, PooledConfig
from personalize.learners.protonet import ProtoNet, ProtoNetConfig
from personalize.learners.reptile import Reptile, ReptileConfig

LEARNERS: dict[str, type[MetaLearner]] = {
    learner.name: learner for learner in (MAML, FOMAML, MetaSGD, Reptile, ProtoNet, BayesianHead, Pooled)
}


def learner_class(name: str) -> type[MetaLearner]:
    """The learner class registered under ``name``."""
    if name not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; choose among {', '.join(sorted(LEARNERS))}")
    return LEARNERS[name]


def create_learner(name: str, encoder: Encoder, config: LearnerConfig | None = None, **fields: Any) -> MetaLearner:
    """Build learner ``name`` on ``encoder`` from a config, or from config fields given as keywords."""
    cls = learner_class(name)
    if config is not None and fields:
        raise ConfigError("pass either a config or config fields, not both")
    return cls(encoder, config if config is not None else cls.config_class(**fields))


__all__ = [
    "FOMAML", "LEARNERS", "MAML", "BayesianConfig", "BayesianHead", "FOMAMLConfig", "LearnerConfig", "MAMLConfig",
    "MetaLearner", "MetaSGD", "MetaSGDConfig", "Pooled", "PooledConfig", "Prediction", "ProtoNet", "ProtoNetConfig",
    "Reptile", "ReptileConfig", "TaskState", "create_learner", "learner_class",
]
