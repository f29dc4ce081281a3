"""Prototypical networks (metric-based): meta-learn adapters so that class means separate.

The adapters are shared by every task and meta-learned so that, in the adapted embedding space,
each class's support examples gather around their mean (the *prototype*). A task is adapted by
computing its prototypes, no gradient step needed, and a query is scored by its similarity to each
prototype times a learned temperature (cosine similarity, or negative squared euclidean distance).

``objective="pairwise"`` trains the same embedding with a Siamese objective instead: every (query,
support) pair is classified as same-class or not. For rating tasks (regression) the metric weighs
the support interactions: a query's score is the softmax-weighted mean of the support targets, a
learned kernel regression.

>>> import torch
>>> from personalize.encoder import tiny_encoder
>>> from personalize.engine.batch import collate_tasks
>>> learner = ProtoNet(tiny_encoder(), ProtoNetConfig(distance="cosine"))
>>> support = collate_tasks(learner.encoder, [["good", "bad"]], [[1, 0]], kind="classification")
>>> state = learner.adapt(support)
>>> state["prototypes"].shape                    # 1 task, 2 classes, hidden 32
torch.Size([1, 2, 32])
>>> learner.predict(state, support).outputs.argmax(-1).tolist()   # each support text is nearest its own class
[[1, 0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.inner_loop import task_accuracy
from personalize.errors import EpisodeError, require
from personalize.learners.base import LearnerConfig, MetaLearner, Prediction, TaskState


@dataclass(frozen=True)
class ProtoNetConfig(LearnerConfig):
    """Metric and objective of the prototypical learner."""

    distance: Literal["cosine", "euclidean"] = "cosine"
    """Cosine similarity, or negative squared euclidean distance, between query and prototype."""
    objective: Literal["prototypical", "pairwise"] = "prototypical"
    """Train with the prototype softmax, or with a Siamese same-class/different-class objective."""
    initial_scale: float = 10.0
    """Starting value of the learned temperature multiplying the similarity."""

    def __post_init__(self) -> None:
        require(self.distance in ("cosine", "euclidean"),
                f"ProtoNetConfig.distance must be 'cosine' or 'euclidean', got {self.distance!r}")
        require(self.objective in ("prototypical", "pairwise"),
                f"ProtoNetConfig.objective must be 'prototypical' or 'pairwise', got {self.objective!r}")
        require(self.initial_scale > 0, f"ProtoNetConfig.initial_scale must be > 0, got {self.initial_scale!r}")


class ProtoNet(MetaLearner):
    """Shared meta-learned adapters; per-task state = class prototypes (or the support set)."""

    name = "protonet"
    family = "metric"
    any_number_of_classes = True
    config_class = ProtoNetConfig
    config: ProtoNetConfig

    def __init__(self, encoder: Encoder, config: ProtoNetConfig | None = None) -> None:
        super().__init__(encoder, config)
        for unused in ("head_weight", "head_bias"):  # the metric replaces the linear head
            del self.init[unused]
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(self.config.initial_scale)))
        self.pair_bias = torch.nn.Parameter(torch.zeros(()))

    # --- embedding and similarity ----------------------------------------------------------------

    def embed(self, batch: TaskBatch, training: bool = False) -> torch.Tensor:
        return self.shared_features(batch, training).float()

    def similarity(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scaled similarity [T, M, K] of queries [T, M, H] to keys [T, K, H]."""
        if self.config.distance == "cosine":
            raw = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).transpose(1, 2)
        else:
            raw = -torch.cdist(queries, keys).pow(2)
        return self.log_scale.exp() * raw

    # --- classification: prototypes ----------------------------------------------------------------

    def prototypes(self, features: torch.Tensor, support: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Class means [T, C, H] of the support features and the support count of each class [T, C]."""
        # Any number of classes: the head's count is a minimum, a task may bring more.
        num_classes = max(self.config.head.num_classes, int(support.targets.max()) + 1)
        members = F.one_hot(support.targets, num_classes).float() * support.example_mask[..., None]
        counts = members.sum(1)
        return members.transpose(1, 2) @ features / counts.clamp_min(1)[..., None], counts

    def logits(self, queries: torch.Tensor, prototypes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        scores = self.similarity(queries, prototypes)
        return scores.masked_fill(counts[:, None, :] == 0, float("-inf"))

    # --- regression: kernel regression over the support --------------------------------------------

    def kernel_regression(self, queries: torch.Tensor, support_features: torch.Tensor,
                          support_targets: torch.Tensor, support_mask: torch.Tensor) -> torch.Tensor:
        scores = self.similarity(queries, support_features).masked_fill(~support_mask[:, None, :], float("-inf"))
        return torch.softmax(scores, dim=-1) @ support_targets[..., None].float()

    # --- the MetaLearner interface -----------------------------------------------------------------

    def meta_loss(self, support: TaskBatch, query: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        with self.encoder.autocast():
            support_features = self.embed(support, training=True)
            query_features = self.embed(query, training=True)
        if self.kind == "regression":
            outputs = self.kernel_regression(query_features, support_features, support.targets,
                                             support.example_mask).squeeze(-1)
            losses = self.prediction_loss(Prediction(outputs), query)
            return losses.mean(), {"loss": losses.mean().item()}
        prototypes, counts = self.prototypes(support_features, support)
        logits = self.logits(query_features, prototypes, counts)
        accuracy = task_accuracy(logits, query.targets, query.example_mask).mean().item()
        if self.config.objective == "pairwise":
            loss = self._pairwise_loss(query_features, query, support_features, support)
        else:
            loss = self.prediction_loss(Prediction(logits), query).mean()
        return loss, {"loss": loss.item(), "accuracy": accuracy}

    def _pairwise_loss(self, query_features: torch.Tensor, query: TaskBatch,
                       support_features: torch.Tensor, support: TaskBatch) -> torch.Tensor:
        """Binary cross-entropy of same-class prediction over every real (query, support) pair."""
        logits = self.similarity(query_features, support_features) + self.pair_bias
        same = (query.targets[:, :, None] == support.targets[:, None, :]).float()
        real = (query.example_mask[:, :, None] & support.example_mask[:, None, :]).float()
        pair_losses = F.binary_cross_entropy_with_logits(logits, same, reduction="none")
        return (pair_losses * real).sum() / real.sum()

    @torch.no_grad()
    def adapt(self, support: TaskBatch) -> TaskState:
        with self.encoder.autocast(inference=True):
            features = self.embed(support)
        if self.kind == "regression":
            return {"support_features": features, "support_targets": support.targets.float(),
                    "support_mask": support.example_mask}
        prototypes, counts = self.prototypes(features, support)
        if (counts == 0).all(dim=1).any():
            raise EpisodeError("a task has no support examples at all")
        return {"prototypes": prototypes, "class_counts": counts}

    @torch.no_grad()
    def predict(self, state: TaskState, inputs: TaskBatch) -> Prediction:
        with self.encoder.autocast(inference=True):
            features = self.embed(inputs)
        if self.kind == "regression":
            outputs = self.kernel_regression(features, state["support_features"], state["support_targets"],
                                             state["support_mask"])
            return Prediction(outputs.squeeze(-1))
        return Prediction(self.logits(features, state["prototypes"], state["class_counts"]))
