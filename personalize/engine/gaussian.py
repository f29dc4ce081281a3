"""Bayesian linear regression with a diagonal Gaussian prior: the one implementation of the posterior.

Every model-based piece of the project is this model. A task (a sentiment domain, a user) has
weights ``w ~ N(m, diag(s²))`` and targets ``y = x·w + noise``, ``noise ~ N(0, σ²)``. Given the task's
rows ``X`` and targets ``y`` the posterior over ``w`` is Gaussian and exact, in two equivalent forms:

- **weight form**, cost grows with the feature size D (the recommender: D = 11, many ratings)::

      precision Λ = diag(1/s²) + XᵀX / σ²,      mean = Λ⁻¹ (m / s² + Xᵀy / σ²),      Σ = Λ⁻¹

- **kernel form**, cost grows with the number of rows N (sentiment: D = 384, 16 support texts)::

      K = X S Xᵀ + σ² I,   α = K⁻¹ (y - X m),   mean(x) = x·m + x S Xᵀ α,
      var(x) = x S x - ‖L⁻¹ X S x‖²   (L Lᵀ = K, S = diag(s²))

Both give the same predictive mean and variance (the doctest below checks it), so which form a
caller uses is a question of cost only. A ridge regression is the posterior mean with ``m = 0`` and
``σ² / s² = ridge``: the recommender's matrix factorisation solves its rows with it too.

>>> features = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.5, 2.0]]])        # one task, three rows
>>> targets, mask = torch.tensor([[1.0, 2.0, 0.0]]), torch.ones(1, 3)
>>> prior_mean, prior_variance, noise = torch.tensor([0.5, 0.0]), torch.tensor([1.0, 2.0]), torch.tensor(0.3)
>>> weights = weight_posterior(*gram_and_moment(features, targets, mask), prior_mean, prior_variance, noise)
>>> kernel = kernel_posterior(features, targets - features @ prior_mean, mask, prior_variance, noise)
>>> query = torch.tensor([[[2.0, -1.0]]])
>>> weight_mean, weight_var = weight_predictive(weights, query[0], torch.zeros(1), noise)
>>> correction, kernel_var = kernel_predictive(kernel, query, prior_variance)
>>> kernel_mean = query @ prior_mean + correction.squeeze(-1)
>>> torch.allclose(weight_mean, kernel_mean, atol=1e-5), torch.allclose(weight_var, kernel_var + noise, atol=1e-5)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

JITTER = 1e-5
"""Added to the prior precision so that a prior variance that has grown huge still factorises."""


@dataclass
class WeightPosterior:
    """Per-task posterior over the weights: mean [T, D] and covariance [T, D, D] (None when not asked for)."""

    mean: torch.Tensor
    covariance: torch.Tensor | None

    def predictive(self, features: torch.Tensor, base: torch.Tensor, noise_variance: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`weight_predictive` of this posterior."""
        return weight_predictive(self, features, base, noise_variance)

    def select(self, task: int, rows: int | None = None) -> WeightPosterior:
        """Task ``task`` alone (a leading task dimension of 1; ``rows`` is for the kernel form's signature)."""
        covariance = None if self.covariance is None else self.covariance[task : task + 1]
        return WeightPosterior(self.mean[task : task + 1], covariance)


@dataclass(frozen=True)
class GaussianHead:
    """A learner's per-task model when it is Bayesian linear regression over shared features:
    targets ``bias + x·w + noise`` with ``w ~ N(prior_mean, diag(prior_variance))`` and noise
    ``N(0, noise_variance)`` (see :meth:`personalize.learners.MetaLearner.gaussian_head`). Whoever
    holds the features of every input can then adapt a task in either form above, without the learner."""

    prior_mean: torch.Tensor      # [D]
    prior_variance: torch.Tensor  # [D]
    bias: torch.Tensor            # scalar
    noise_variance: torch.Tensor  # scalar


class KernelPosterior(NamedTuple):
    """Per-task posterior in kernel form: the support rows [T, N, D] (padding zeroed), ``α`` [T, N, O]
    and the Cholesky factor of ``K`` [T, N, N]."""

    features: torch.Tensor
    alpha: torch.Tensor
    cholesky: torch.Tensor


# --- weight form --------------------------------------------------------------------------------------


def gram_and_moment(features: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's ``XᵀX`` [T, D, D] and ``Xᵀy`` [T, D] from padded rows: features [T, N, D], targets
    [T, N], mask [T, N] (1 for a real row, 0 for padding)."""
    weighted = features * mask.unsqueeze(-1)
    return torch.einsum("tnd,tne->tde", weighted, features), torch.einsum("tnd,tn->td", weighted, targets)


def grouped_gram_and_moment(features: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, num_groups: int,
                            rows_per_step: int = 131_072) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gram_and_moment` from unpadded rows: ``features`` [R, D] and ``targets`` [R] of every row,
    ``groups`` [R] saying whose (0..num_groups-1). A task costs what its rows cost; rows are summed
    ``rows_per_step`` at a time, so memory stays at one step's outer products.

    >>> rows = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.5]])
    >>> gram, moment = grouped_gram_and_moment(rows, torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0, 0, 1]), 3)
    >>> gram[0].tolist(), moment[1].tolist(), gram[2].abs().sum().item()      # group 2 has no row
    ([[2.0, 1.0], [1.0, 1.0]], [0.5, 0.25], 0.0)
    """
    size = features.shape[-1]
    gram = torch.zeros(num_groups, size, size, dtype=features.dtype)
    moment = torch.zeros(num_groups, size, dtype=features.dtype)
    for start in range(0, len(features), rows_per_step):
        part = slice(start, start + rows_per_step)
        rows = features[part]
        gram.index_add_(0, groups[part], rows[:, :, None] * rows[:, None, :])
        moment.index_add_(0, groups[part], rows * targets[part, None])
    return gram, moment


def weight_posterior(gram: torch.Tensor, moment: torch.Tensor, prior_mean: torch.Tensor,
                     prior_variance: torch.Tensor, noise_variance: torch.Tensor,
                     covariance: bool = True, jitter: float = JITTER) -> WeightPosterior:
    """The exact posterior of every task from its ``XᵀX`` [T, D, D] and ``Xᵀy`` [T, D].

    ``prior_mean`` is [D] (one prior for all) or [T, D] (a prior per task, e.g. from what is known
    about a user); ``prior_variance`` [D] (> 0); ``noise_variance`` a scalar. A task with no row gets
    its prior. ``covariance=False`` skips the inverse when only the mean is needed (ridge solves);
    ``jitter`` is added to the prior precision (:data:`JITTER`; 0 when the prior variance is known finite).
    """
    precision = gram / noise_variance + torch.diag_embed(1.0 / prior_variance + jitter).expand_as(gram)
    factor = torch.linalg.cholesky(precision)
    target = prior_mean / prior_variance + moment / noise_variance
    mean = torch.cholesky_solve(target.expand_as(moment).unsqueeze(-1), factor).squeeze(-1)
    return WeightPosterior(mean=mean, covariance=torch.cholesky_inverse(factor) if covariance else None)


def ridge_solve(gram: torch.Tensor, moment: torch.Tensor, ridge: float) -> torch.Tensor:
    """``(XᵀX + ridge I)⁻¹ Xᵀy`` for every task [T, D]: the posterior mean under ``N(0, I / ridge)``
    with unit noise. Exact (no :data:`JITTER`): ``ridge > 0`` already makes the system positive
    definite, and a task with zero ``XᵀX`` and ``Xᵀy`` gets zeros.

    >>> ridge_solve(torch.eye(2)[None] * 4.0, torch.tensor([[4.0, 8.0]]), ridge=4.0).round(decimals=4).tolist()
    [[0.5, 1.0]]
    """
    size = gram.shape[-1]
    prior_variance = torch.full((size,), 1.0 / ridge, dtype=gram.dtype)
    return weight_posterior(gram, moment, torch.zeros(size, dtype=gram.dtype), prior_variance,
                            torch.tensor(1.0, dtype=gram.dtype), covariance=False, jitter=0.0).mean


def weight_predictive(posterior: WeightPosterior, features: torch.Tensor, base: torch.Tensor,
                      noise_variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive mean and variance [T, N] of targets ``base + x·w`` at ``features`` [T, N, D] (or [N, D],
    the same rows for every task), with ``base`` [T, N] or [N]. Needs the covariance."""
    assert posterior.covariance is not None, "weight_predictive needs the posterior covariance"
    if features.dim() == 2:
        mean = base + posterior.mean @ features.T
        spread = torch.einsum("nd,tde,ne->tn", features, posterior.covariance, features)
    else:
        mean = base + torch.einsum("tnd,td->tn", features, posterior.mean)
        spread = torch.einsum("tnd,tde,tne->tn", features, posterior.covariance, features)
    return mean, noise_variance + spread.clamp_min(0.0)


# --- kernel form --------------------------------------------------------------------------------------


def kernel_posterior(features: torch.Tensor, residuals: torch.Tensor, mask: torch.Tensor,
                     prior_variance: torch.Tensor, noise_variance: torch.Tensor) -> KernelPosterior:
    """The posterior of every task in kernel form.

    Args:
        features: [T, N, D] support rows (padding rows are zeroed here: they add nothing).
        residuals: [T, N] or [T, N, O] targets minus the prior mean's prediction ``x·m`` (O outputs
            share the kernel: one-hot classes regressed at once).
        mask: [T, N] 1 for real rows.
        prior_variance: [D]; noise_variance: scalar.
    """
    keep = mask.unsqueeze(-1).to(features.dtype)
    features = features * keep
    residuals = residuals.unsqueeze(-1) if residuals.dim() == 2 else residuals
    kernel = (features * prior_variance) @ features.transpose(1, 2)
    kernel = kernel + noise_variance * torch.eye(kernel.shape[-1], dtype=kernel.dtype, device=kernel.device)
    cholesky = torch.linalg.cholesky(kernel)
    return KernelPosterior(features, torch.cholesky_solve(residuals * keep, cholesky), cholesky)


class SupportPosterior:
    """A kernel-form posterior seen as a posterior over the weights: what a task with fewer rows than
    features costs least as (memory and time grow with its N rows, not with D²).

    ``mean`` [T, D] is ``m + S Φᵀ α``; ``covariance`` [T, D, D], ``S - (L⁻¹ Φ S)ᵀ (L⁻¹ Φ S)``, is only
    formed when first read; :meth:`predictive` never forms it. Same numbers as the weight form
    (up to its :data:`JITTER`).
    """

    def __init__(self, kernel: KernelPosterior, prior_mean: torch.Tensor, prior_variance: torch.Tensor) -> None:
        self.kernel, self.prior_variance = kernel, prior_variance
        spread = (kernel.features * prior_variance).transpose(1, 2) @ kernel.alpha          # [T, D, 1]
        self.mean = prior_mean + spread.squeeze(-1)
        self._covariance: torch.Tensor | None = None

    @property
    def covariance(self) -> torch.Tensor:
        if self._covariance is None:
            explained = torch.linalg.solve_triangular(self.kernel.cholesky, self.kernel.features * self.prior_variance,
                                                      upper=False)                           # [T, N, D]
            self._covariance = torch.diag_embed(self.prior_variance).expand(len(self.mean), -1, -1) \
                - explained.transpose(1, 2) @ explained
        return self._covariance

    def predictive(self, features: torch.Tensor, base: torch.Tensor, noise_variance: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """As :func:`weight_predictive` (features [T, M, D] or [M, D] shared by every task)."""
        if features.dim() == 2:
            features = features.expand(len(self.mean), -1, -1)
        mean = base + torch.einsum("tmd,td->tm", features, self.mean)
        _, variance = kernel_predictive(self.kernel, features, self.prior_variance)
        return mean, noise_variance + variance

    def select(self, task: int, rows: int | None = None) -> SupportPosterior:
        """Task ``task`` alone, keeping its first ``rows`` support rows (the real ones; padding after)."""
        keep = slice(0, rows)  # copies, so that one task does not hold the whole batch's padded rows
        kernel = KernelPosterior(self.kernel.features[task : task + 1, keep].clone(),
                                 self.kernel.alpha[task : task + 1, keep].clone(),
                                 self.kernel.cholesky[task : task + 1, keep, keep].clone())
        chosen = SupportPosterior.__new__(SupportPosterior)
        chosen.kernel, chosen.prior_variance = kernel, self.prior_variance
        chosen.mean = self.mean[task : task + 1].clone()
        chosen._covariance = None if self._covariance is None else self._covariance[task : task + 1].clone()
        return chosen


def kernel_predictive(posterior: KernelPosterior, features: torch.Tensor, prior_variance: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """At query rows ``features`` [T, M, D]: what the support adds to the prior mean's prediction
    [T, M, O], and the epistemic variance [T, M] (noise excluded; add ``σ²`` for a target's variance)."""
    cross = (features * prior_variance) @ posterior.features.transpose(1, 2)                 # [T, M, N]
    correction = cross @ posterior.alpha
    explained = torch.linalg.solve_triangular(posterior.cholesky, cross.transpose(1, 2), upper=False)
    variance = (features.pow(2) * prior_variance).sum(-1) - explained.pow(2).sum(1)
    return correction, variance.clamp_min(1e-9)


# --- the training objective ---------------------------------------------------------------------------


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (without the constant ``½ log 2π``) of the masked targets under
    ``N(mean, variance)``, per task [T].

    >>> gaussian_nll(torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[1.0, 9.0]]), torch.tensor([[1.0, 0.0]]))
    tensor([0.5000])
    """
    terms = 0.5 * (torch.log(variance) + (targets - mean) ** 2 / variance) * mask
    return terms.sum(1) / mask.sum(1).clamp_min(1.0)
