"""Meta-SGD: MAML whose inner step size is meta-learned too, one per parameter entry.

The inner update is ``θ' = θ - α ∘ ∇L_support(θ)`` where α has the shape of θ and is learned in
the outer loop alongside θ. Learning α lets the learner decide, per adapter and head entry, how far
and in which direction a few support examples should move it.

>>> from personalize.encoder import tiny_encoder
>>> learner = MetaSGD(tiny_encoder(), MetaSGDConfig(inner_lr=0.05))
>>> sorted(learner.inner_lrs)[:2], round(learner.inner_lrs["head_bias"][0].item(), 6)
(['head_bias', 'head_weight'], 0.05)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from personalize.engine.batched_model import Params
from personalize.learners.maml import MAML, MAMLConfig


@dataclass(frozen=True)
class MetaSGDConfig(MAMLConfig):
    """Meta-SGD: ``inner_lr`` is the starting value of every learned step size.

    First-order by default: the step sizes still get a gradient (through ``-α ∘ g``), at the cost of a
    first-order inner loop; set ``first_order=False`` for the full second-order version.
    """

    first_order: bool = True


class MetaSGD(MAML):
    """MAML with a meta-learned step size for every parameter entry."""

    name = "meta-sgd"
    config_class = MetaSGDConfig

    def __init__(self, encoder, config: MetaSGDConfig | None = None) -> None:
        super().__init__(encoder, config)
        self.inner_lrs = torch.nn.ParameterDict({
            name: torch.nn.Parameter(torch.full_like(value, self.config.inner_lr))
            for name, value in self.init.items()
        })

    def inner_learning_rate(self) -> Params:
        return dict(self.inner_lrs.items())
