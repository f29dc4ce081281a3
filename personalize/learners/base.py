"""What every meta-learner is: meta-parameters, an outer objective, ``adapt`` and ``predict``.

A learner owns a :class:`~personalize.engine.batched_model.BatchedLoRAModel` (frozen encoder +
adapter and head layout) and its *meta-parameters*: the initialization of the adapters and head
(``init``) plus whatever else its family learns (inner learning rates, a temperature, a prior).

- ``meta_gradient(support, query)`` accumulates the outer gradient of one meta-batch of tasks into
  the meta-parameters' ``.grad`` and returns metrics; the training loop steps the optimizer.
- ``adapt(support)`` fits every task of a batch at once and returns its per-task *state*: a dict of
  tensors with a leading task dimension (adapted weights, prototypes, a posterior...).
- ``predict(state, inputs)`` gives every task's outputs on new inputs, with a variance where the
  family has one.

Families live in their own files: ``maml.py`` (MAML, first-order MAML), ``meta_sgd.py``,
``reptile.py`` (optimization-based), ``protonet.py`` (metric-based), ``bayesian.py`` (model-based).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.batched_model import BatchedLoRAModel, Params, distinct_rows
from personalize.engine.config import AdapterConfig, HeadConfig, config_from_dict
from personalize.engine.gaussian import GaussianHead
from personalize.engine.inner_loop import default_chunk_tokens, expand_to_tasks, task_accuracy, task_losses
from personalize.engine.packing import extent, length_groups, scattered
from personalize.errors import ConfigError, require

TaskState = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LearnerConfig:
    """Fields shared by every learner; each learner's config extends it."""

    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    """Which LoRA adapters sit on the frozen encoder."""
    head: HeadConfig = field(default_factory=HeadConfig)
    """The task head: classification over ``num_classes`` or a regression score."""
    seed: int = 0
    """Seed of the initial meta-parameters."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LearnerConfig:
        raw = dict(raw)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        require(not unknown, f"{cls.__name__}: unknown field(s) {unknown}")
        raw["adapter"] = config_from_dict(AdapterConfig, raw.get("adapter", {}))
        raw["head"] = config_from_dict(HeadConfig, raw.get("head", {}))
        return cls(**raw)


@dataclass
class Prediction:
    """Outputs for every task's examples: logits [T, N, C] or scores [T, N], and maybe a variance."""

    outputs: torch.Tensor
    variance: torch.Tensor | None = None


class MetaLearner(torch.nn.Module, ABC):
    """Base class of every meta-learner. Subclasses set ``name``, ``family`` and ``config_class``."""

    name: ClassVar[str]
    family: ClassVar[str]  # "optimization", "metric" or "model"
    config_class: ClassVar[type[LearnerConfig]] = LearnerConfig
    any_number_of_classes: ClassVar[bool] = False
    """Whether a task may have more classes than ``config.head.num_classes`` (no fixed-size head)."""

    def __init__(self, encoder: Encoder, config: LearnerConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.encoder = encoder
        self.config = config
        self.model = BatchedLoRAModel(encoder, config.adapter, config.head)
        initial = self.model.init_parameters(config.seed)
        self.init = torch.nn.ParameterDict({name: torch.nn.Parameter(value) for name, value in initial.items()})
        self.record: dict[str, Any] = {}  # training history, model selection: saved with checkpoints

    @property
    def kind(self) -> str:
        return self.config.head.kind

    def init_params(self) -> Params:
        """The meta-learned initialization as a plain dict (still connected to the graph)."""
        return dict(self.init.items())

    # --- the family-specific parts -------------------------------------------------------------------

    def meta_loss(self, support: TaskBatch, query: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The outer objective on one meta-batch (mean over tasks) and metrics to log."""
        raise NotImplementedError(f"{type(self).__name__} defines meta_gradient instead of meta_loss")

    def meta_gradient(self, support: TaskBatch, query: TaskBatch) -> dict[str, float]:
        """Accumulate the outer gradient of one meta-batch into ``.grad``; return metrics."""
        loss, metrics = self.meta_loss(support, query)
        loss.backward()
        return metrics

    @abstractmethod
    def adapt(self, support: TaskBatch) -> TaskState:
        """Fit every task of ``support`` at once; returns per-task state with a leading task dim."""

    @abstractmethod
    def predict(self, state: TaskState, inputs: TaskBatch) -> Prediction:
        """Outputs of every adapted task on its inputs (``inputs.targets`` are ignored)."""

    # --- capabilities -----------------------------------------------------------------------------

    def gaussian_head(self) -> GaussianHead | None:
        """The prior, bias and noise of the per-task model when it is Bayesian linear regression over
        features that do not depend on the task (:meth:`inference_features`); None for every other
        learner. With it a caller who has the features of a whole catalogue adapts a task in closed
        form without running the encoder again (the recommender does)."""
        return None

    def inference_features(self, batch: TaskBatch) -> torch.Tensor:
        """The features [T, N, D] that :meth:`gaussian_head`'s model reads, computed as :meth:`adapt`
        and :meth:`predict` compute them (needs a learner with a Gaussian head)."""
        raise ConfigError(f"the {self.name!r} learner has no Gaussian head over shared features; "
                          "use one that has (e.g. 'bayes')")

    # --- shared --------------------------------------------------------------------------------------

    def evaluate(self, support: TaskBatch, query: TaskBatch) -> dict[str, torch.Tensor]:
        """Adapt on ``support`` and score ``query``: per-task loss, and accuracy or MAE. Shapes [T]."""
        prediction = self.predict(self.adapt(support), query)
        metrics = {"loss": self.prediction_loss(prediction, query)}
        if self.kind == "classification":
            metrics["accuracy"] = task_accuracy(prediction.outputs, query.targets, query.example_mask)
        else:
            error = (prediction.outputs.float() - query.targets).abs() * query.example_mask
            metrics["mae"] = error.sum(1) / query.example_mask.sum(1).clamp_min(1)
        return {name: value.detach() for name, value in metrics.items()}

    def prediction_loss(self, prediction: Prediction, batch: TaskBatch) -> torch.Tensor:
        """Per-task loss of a prediction: cross-entropy or squared error. Shape [T]."""
        return task_losses(prediction.outputs, batch.targets, batch.example_mask, self.kind)

    def task_features(self, params: Params, batch: TaskBatch, training: bool = False,
                      normalize_text: bool = False) -> torch.Tensor:
        """The head's input [T, N, H + F] under the given (per-task or shared) parameters: pooled text
        features (L2-normalised with ``normalize_text``), then the batch's side features if any."""
        text = self.model.text_features(params, self.model.prefix_of(batch), batch.attention_mask, training)
        if normalize_text:
            text = F.normalize(text.float(), dim=-1)
        return self.model.join_side(text, batch.side)

    def shared_features(self, batch: TaskBatch, training: bool = False, normalize_text: bool = False) -> torch.Tensor:
        """:meth:`task_features` under the shared meta-learned init, for learners whose features do
        not depend on the task (``bayes``, ``protonet``).

        At inference each distinct input of the batch goes through the encoder once, however many
        tasks hold it (users rating the same films), and the result is gathered back [T, N, H + F];
        in training every task's examples run as they are (dropout differs between them).
        """
        if training:
            return self.task_features(expand_to_tasks(self.init_params(), batch.num_tasks), batch, True, normalize_text)
        tasks, examples, length = batch.input_ids.shape
        inverse, first = distinct_rows(batch.input_ids.reshape(tasks * examples, length))
        ids = batch.input_ids.reshape(tasks * examples, length)[first]
        mask = batch.attention_mask.reshape(tasks * examples, length)[first]
        prefix = None if batch.prefix is None else self.model.prefix_of(batch).reshape(tasks * examples, length, -1)
        init = expand_to_tasks(self.init_params(), 1)
        pieces = []
        lengths = extent(mask)
        for group in length_groups(lengths, default_chunk_tokens(ids.device)):  # similar lengths together
            group = group.to(ids.device)
            cut = max(1, int(lengths[group].max()))  # the group's longest text: no padding past it
            part_ids, part_mask = ids[group, :cut][None], mask[group, :cut][None]
            part_prefix = (self.model.frozen_prefix(part_ids, part_mask) if prefix is None
                           else prefix[first[group], :cut][None])
            pieces.append((group, {"text": self.model.text_features(init, part_prefix, part_mask)[0]}))
        text = scattered(pieces, len(first))["text"]
        if normalize_text:
            text = F.normalize(text.float(), dim=-1)
        return self.model.join_side(text[inverse].reshape(tasks, examples, -1), batch.side)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, family={self.family!r}"
