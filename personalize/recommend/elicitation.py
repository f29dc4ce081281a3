"""Choosing what to ask a new user: the items whose ratings would teach the model most about them.

A user's posterior covariance (:mod:`personalize.engine.gaussian`, weight form) depends only on
*which* items were rated, not on the ratings: so what rating an item would teach is known exactly
before the answer. Both criteria below are greedy: pick the best item, update the covariance as if
it had been rated, repeat.
"""

from __future__ import annotations

import torch


def information_gain(covariance: torch.Tensor, candidates: torch.Tensor, noise_variance: float,
                     count: int, weights: torch.Tensor | None = None) -> tuple[list[int], list[float]]:
    """Greedily pick ``count`` rows of ``candidates`` [C, D] whose ratings would shrink the
    posterior ``covariance`` [D, D] most: each pick maximises ``weight · ½ log(1 + xᵀΣx / σ²)`` (the
    information its rating carries about the user's weights), then Σ is updated as if it had been
    rated. Returns the chosen row positions and their gains, in order.

    >>> covariance = torch.eye(2)
    >>> candidates = torch.tensor([[1.0, 0.0], [0.9, 0.0], [0.0, 0.5]])
    >>> information_gain(covariance, candidates, noise_variance=0.1, count=2)[0]  # not two alike
    [0, 2]
    """
    covariance = covariance.clone()
    weights = torch.ones(len(candidates)) if weights is None else weights
    available = torch.ones(len(candidates), dtype=torch.bool)
    chosen, gains = [], []
    for _ in range(min(count, len(candidates))):
        spread = torch.einsum("cd,de,ce->c", candidates, covariance, candidates).clamp_min(0.0)
        gain = 0.5 * torch.log1p(spread / noise_variance) * weights
        gain = torch.where(available, gain, torch.tensor(-torch.inf))
        best = int(torch.argmax(gain))
        chosen.append(best)
        gains.append(float(gain[best]))
        available[best] = False
        direction = covariance @ candidates[best]
        covariance = covariance - torch.outer(direction, direction) / (noise_variance + float(spread[best]))
    return chosen, gains


def variance_reduction(covariance: torch.Tensor, candidates: torch.Tensor, noise_variance: float, count: int,
                       targets: torch.Tensor, target_weights: torch.Tensor,
                       weights: torch.Tensor | None = None) -> tuple[list[int], list[float]]:
    """Greedily pick ``count`` rows of ``candidates`` [C, D] whose ratings would most reduce the
    predictive variance of the ``targets`` [T, D] (weighted by ``target_weights`` [T]): rating item
    ``c`` removes ``(x_jᵀΣx_c)² / (σ² + x_cᵀΣx_c)`` from the variance of item ``j``. Each pick's
    reduction is multiplied by its ``weights`` entry; Σ is then updated as if it had been rated.

    >>> covariance = torch.eye(2)
    >>> candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> targets = torch.tensor([[0.0, 1.0], [0.0, 2.0]])   # only the second direction matters
    >>> variance_reduction(covariance, candidates, 0.1, 1, targets, torch.ones(2))[0]
    [1]
    """
    covariance = covariance.clone()
    weights = torch.ones(len(candidates)) if weights is None else weights
    available = torch.ones(len(candidates), dtype=torch.bool)
    chosen, gains = [], []
    for _ in range(min(count, len(candidates))):
        projected = candidates @ covariance                                   # [C, D]
        spread = (projected * candidates).sum(-1).clamp_min(0.0)             # x_cᵀΣx_c
        covariances = targets @ projected.T                                  # [T, C]: x_jᵀΣx_c
        reduction = (target_weights.unsqueeze(-1) * covariances**2).sum(0) / (noise_variance + spread) * weights
        reduction = torch.where(available, reduction, torch.tensor(-torch.inf))
        best = int(torch.argmax(reduction))
        chosen.append(best)
        gains.append(float(reduction[best]))
        available[best] = False
        direction = projected[best]
        covariance = covariance - torch.outer(direction, direction) / (noise_variance + float(spread[best]))
    return chosen, gains
