"""A user's taste as a Bayesian linear model over item features, in closed form and batched over users.

Each user has weights ``θ ~ N(m, diag(s²))`` (the meta-learned prior) and rates item ``i`` as
``r = base_i + x_i·θ + noise``, ``noise ~ N(0, σ²)``. Given the items a user rated, the posterior
over ``θ`` is Gaussian and exact:

    precision Λ = diag(1/s²) + Xᵀ X / σ²,     mean θ̂ = Λ⁻¹ (m / s² + Xᵀ (r - base) / σ²)

and the predictive rating of any item is ``base_i + x_i·θ̂`` with variance ``σ² + x_iᵀ Λ⁻¹ x_i``.
The covariance does not depend on the ratings, only on *which* items were rated: that is what makes
choosing the next items to ask about (:func:`information_gain`) exact before any answer is known.

>>> import torch
>>> features = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])        # one user, two rated items
>>> residuals, mask = torch.tensor([[1.0, 2.0]]), torch.ones(1, 2)
>>> posterior = user_posterior(features, residuals, mask, torch.zeros(2), torch.ones(2), torch.tensor(0.01))
>>> [round(value, 2) for value in posterior.mean[0].tolist()]   # nearly the least-squares fit (1, 1)
[1.0, 0.99]
>>> mean, variance = predictive(posterior, features, torch.zeros(1, 2), torch.tensor(0.01))
>>> bool((variance > 0.01).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

JITTER = 1e-5


@dataclass
class Posterior:
    """Per-user posterior over taste weights: mean [U, D] and covariance [U, D, D]."""

    mean: torch.Tensor
    covariance: torch.Tensor


def user_posterior(features: torch.Tensor, residuals: torch.Tensor, mask: torch.Tensor, prior_mean: torch.Tensor,
                   prior_variance: torch.Tensor, noise_variance: torch.Tensor) -> Posterior:
    """Exact posterior of every user's weights.

    Args:
        features: [U, N, D] features of each user's rated items (padding rows are ignored).
        residuals: [U, N] rating minus the item's base score.
        mask: [U, N] 1 for real ratings, 0 for padding. A user with no rating gets the prior.
        prior_mean, prior_variance: [D] the prior (variances > 0).
        noise_variance: scalar σ².
    """
    weighted = features * mask.unsqueeze(-1)
    gram = torch.einsum("und,une->ude", weighted, features)
    return _solve(gram, torch.einsum("und,un->ud", weighted, residuals), prior_mean, prior_variance, noise_variance)


def posterior_from_rows(features: torch.Tensor, residuals: torch.Tensor, users: torch.Tensor, num_users: int,
                        prior_mean: torch.Tensor, prior_variance: torch.Tensor, noise_variance: torch.Tensor,
                        rows_per_step: int = 131_072) -> Posterior:
    """The posterior of :func:`user_posterior` from unpadded rows: ``features`` [R, D] and ``residuals``
    [R] of every rating, ``users`` [R] saying whose (0..num_users-1). No padding, so users with long
    and short histories cost what their ratings cost; rows are summed ``rows_per_step`` at a time.

    >>> features = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.5]])
    >>> flat = posterior_from_rows(features, torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0, 0, 1]), 3,
    ...                            torch.zeros(2), torch.ones(2), torch.tensor(0.5))
    >>> padded = user_posterior(torch.stack([features[:2], torch.cat([features[2:], features[2:]]),
    ...                                      features[:2]]), torch.tensor([[1.0, 2.0], [0.5, 0.0], [0.0, 0.0]]),
    ...                         torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]), torch.zeros(2), torch.ones(2),
    ...                         torch.tensor(0.5))
    >>> torch.allclose(flat.mean, padded.mean) and torch.allclose(flat.covariance, padded.covariance)
    True
    """
    size = features.shape[-1]
    gram = torch.zeros(num_users, size, size, dtype=features.dtype)
    moment = torch.zeros(num_users, size, dtype=features.dtype)
    for start in range(0, len(features), rows_per_step):
        part = slice(start, start + rows_per_step)
        rows = features[part]
        gram.index_add_(0, users[part], rows[:, :, None] * rows[:, None, :])
        moment.index_add_(0, users[part], rows * residuals[part, None])
    return _solve(gram, moment, prior_mean, prior_variance, noise_variance)


def _solve(gram: torch.Tensor, moment: torch.Tensor, prior_mean: torch.Tensor, prior_variance: torch.Tensor,
           noise_variance: torch.Tensor) -> Posterior:
    """The posterior from each user's ``XᵀX`` [U, D, D] and ``Xᵀ(r - base)`` [U, D]."""
    precision = gram / noise_variance + torch.diag_embed(1.0 / prior_variance + JITTER).expand_as(gram)
    factor = torch.linalg.cholesky(precision)
    target = prior_mean / prior_variance + moment / noise_variance
    mean = torch.cholesky_solve(target.unsqueeze(-1), factor).squeeze(-1)
    return Posterior(mean=mean, covariance=torch.cholesky_inverse(factor))


def predictive(posterior: Posterior, features: torch.Tensor, base: torch.Tensor,
               noise_variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive mean and variance [U, N] of each user's ratings of items with ``features`` [U, N, D]
    (or [N, D], the same items for every user) and base scores ``base`` ([U, N] or [N])."""
    if features.dim() == 2:
        mean = base + posterior.mean @ features.T
        spread = torch.einsum("nd,ude,ne->un", features, posterior.covariance, features)
    else:
        mean = base + torch.einsum("und,ud->un", features, posterior.mean)
        spread = torch.einsum("und,ude,une->un", features, posterior.covariance, features)
    return mean, noise_variance + spread.clamp_min(0.0)


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the masked targets under N(mean, variance), per user [U]."""
    terms = 0.5 * (torch.log(variance) + (targets - mean) ** 2 / variance) * mask
    return terms.sum(1) / mask.sum(1).clamp_min(1.0)


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
