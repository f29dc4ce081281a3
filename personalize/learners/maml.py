"""MAML and first-order MAML: meta-learn an initialization that a few gradient steps adapt well.

For a meta-batch of tasks, every task starts from the shared initialization θ, takes
``inner_steps`` gradient steps on its support loss (all tasks in one batched pass), and the outer
objective is the mean query loss of the adapted parameters. MAML differentiates through the inner
steps (second order); first-order MAML treats the inner gradients as constants, so the
meta-gradient is the query gradient at the adapted parameters (cheaper, usually as good).

>>> from personalize.encoder import tiny_encoder
>>> learner = MAML(tiny_encoder(), MAMLConfig(inner_steps=2, inner_lr=0.1))
>>> learner.name, learner.family, learner.config.first_order
('maml', 'optimization', False)
>>> FOMAML(tiny_encoder()).config.first_order
True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from personalize.engine.batch import TaskBatch
from personalize.engine.batched_model import Params
from personalize.engine.inner_loop import adapt_by_gradient, expand_to_tasks, gradient_steps, task_accuracy
from personalize.errors import require
from personalize.learners.base import LearnerConfig, MetaLearner, Prediction, TaskState


@dataclass(frozen=True)
class MAMLConfig(LearnerConfig):
    """Inner loop of MAML."""

    inner_steps: int = 5
    """Gradient steps on the support set, in meta-training and at adaptation."""
    inner_lr: float = 0.1
    """Step size of the inner gradient steps."""
    first_order: bool = False
    """Treat inner gradients as constants (first-order MAML) instead of differentiating through them."""

    def __post_init__(self) -> None:
        require(isinstance(self.inner_steps, int) and self.inner_steps >= 0,
                f"{type(self).__name__}.inner_steps must be an int >= 0, got {self.inner_steps!r}")
        require(self.inner_lr > 0, f"{type(self).__name__}.inner_lr must be > 0, got {self.inner_lr!r}")


@dataclass(frozen=True)
class FOMAMLConfig(MAMLConfig):
    """First-order MAML: the same inner loop, without second derivatives."""

    first_order: bool = True


class MAML(MetaLearner):
    """Model-agnostic meta-learning over LoRA adapters and the task head."""

    name = "maml"
    family = "optimization"
    config_class = MAMLConfig
    config: MAMLConfig

    def inner_learning_rate(self) -> float | Params:
        """The inner step size: one number here; Meta-SGD learns one per parameter entry."""
        return self.config.inner_lr

    def meta_loss(self, support: TaskBatch, query: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        second_order = not self.config.first_order
        # The fused attention kernels have no double backward; the math kernel is plain differentiable ops.
        attention = sdpa_kernel(SDPBackend.MATH) if second_order else contextlib.nullcontext()
        with self.encoder.autocast(), attention:
            support_prefix = model.prefix_of(support)
            query_prefix = model.prefix_of(query)
            adapted = gradient_steps(
                model, expand_to_tasks(self.init_params(), support.num_tasks), support_prefix, support,
                steps=self.config.inner_steps, learning_rate=self.inner_learning_rate(),
                create_graph=second_order, training=True,
            )
            outputs = model.forward(adapted, query_prefix, query.attention_mask, training=True, side=query.side)
        losses = self.prediction_loss(Prediction(outputs), query)
        metrics = {"loss": losses.mean().item()}
        if self.kind == "classification":
            metrics["accuracy"] = task_accuracy(outputs, query.targets, query.example_mask).mean().item()
        return losses.mean(), metrics

    def adapt(self, support: TaskBatch) -> TaskState:
        return adapt_by_gradient(self.model, self.init_params(), support, steps=self.config.inner_steps,
                                 learning_rate=self.inner_learning_rate())

    @torch.no_grad()
    def predict(self, state: TaskState, inputs: TaskBatch) -> Prediction:
        with self.encoder.autocast(inference=True):
            prefix = self.model.prefix_of(inputs)
            return Prediction(self.model.forward(state, prefix, inputs.attention_mask, side=inputs.side).float())


class FOMAML(MAML):
    """First-order MAML."""

    name = "fomaml"
    config_class = FOMAMLConfig
