"""Pooled transfer: the non-meta-learned baseline every meta-learner must beat.

The same adapters and head are trained as one supervised model on all meta-train examples: each
outer step is plain cross-entropy (or squared error) of the *shared* parameters on every example of
the meta-batch, support and query alike, with no inner loop. A new task then either uses the model
as it is (zero-shot transfer, ``inner_steps=0``) or fine-tunes it with the same gradient steps as
MAML (transfer + adaptation). Few-shot studies found this baseline hard to beat, so the benchmarks
put it next to every meta-learner.

>>> from personalize.encoder import tiny_encoder
>>> learner = Pooled(tiny_encoder(), PooledConfig(inner_steps=0))
>>> learner.name, learner.family
('pooled', 'transfer')
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from personalize.engine.batch import TaskBatch
from personalize.engine.inner_loop import expand_to_tasks, task_accuracy
from personalize.learners.base import Prediction
from personalize.learners.maml import MAML, MAMLConfig


@dataclass(frozen=True)
class PooledConfig(MAMLConfig):
    """Adaptation of the pooled model: ``inner_steps`` gradient steps (0 = zero-shot transfer)."""

    first_order: bool = True


class Pooled(MAML):
    """One supervised model over all training tasks; adapted, if at all, by plain fine-tuning."""

    name = "pooled"
    family = "transfer"
    config_class = PooledConfig
    config: PooledConfig

    def meta_loss(self, support: TaskBatch, query: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        losses, correct, counts = [], [], []
        with self.encoder.autocast():
            for batch in (support, query):  # one supervised pass over every example, support and query alike
                params = expand_to_tasks(self.init_params(), batch.num_tasks)
                outputs = self.model.forward(params, self.model.prefix_of(batch), batch.attention_mask, training=True,
                                             side=batch.side)
                count = batch.example_mask.sum(1).float()
                losses.append(self.prediction_loss(Prediction(outputs), batch) * count)
                if self.kind == "classification":
                    correct.append(task_accuracy(outputs, batch.targets, batch.example_mask) * count)
                counts.append(count)
        total = counts[0] + counts[1]
        loss = ((losses[0] + losses[1]) / total).mean()
        metrics = {"loss": loss.item()}
        if correct:
            metrics["accuracy"] = ((correct[0] + correct[1]) / total).mean().item()
        return loss, metrics
