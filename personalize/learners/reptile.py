"""Reptile: move the initialization toward the weights each task reaches after a few steps.

For every task of a meta-batch, start from θ and take ``inner_steps`` plain gradient steps on all
its labelled examples (support and query together); the outer "gradient" is ``θ - mean_t θ_t``,
which the outer optimizer follows. No second derivatives, no query/support distinction in training.

>>> from personalize.encoder import tiny_encoder
>>> learner = Reptile(tiny_encoder(), ReptileConfig(inner_steps=3))
>>> learner.name, learner.family
('reptile', 'optimization')
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from personalize.engine.batch import TaskBatch, concat_examples
from personalize.engine.inner_loop import adapt_by_gradient
from personalize.learners.maml import MAML, MAMLConfig


@dataclass(frozen=True)
class ReptileConfig(MAMLConfig):
    """Reptile's inner loop (``first_order`` does not apply: Reptile never differentiates through it)."""

    first_order: bool = True


class Reptile(MAML):
    """Reptile over LoRA adapters and the task head; adapts like MAML at test time."""

    name = "reptile"
    config_class = ReptileConfig

    def meta_gradient(self, support: TaskBatch, query: TaskBatch) -> dict[str, float]:
        tasks = concat_examples(support, query)
        init = self.init_params()
        adapted = adapt_by_gradient(self.model, init, tasks, steps=self.config.inner_steps,
                                    learning_rate=self.config.inner_lr)
        squared_norm = 0.0
        with torch.no_grad():
            for name, parameter in self.init.items():
                direction = parameter - adapted[name].mean(0)
                parameter.grad = direction if parameter.grad is None else parameter.grad + direction
                squared_norm += direction.pow(2).sum().item()
        return {"reptile_step_norm": squared_norm**0.5}
