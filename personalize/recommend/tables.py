"""``ItemTables``: everything a meta-fitted recommender needs at inference, as tensors.

Whatever model built them (the built-in matrix factorisation of :mod:`personalize.recommend.model`,
or an engine learner with a Gaussian head, :mod:`personalize.recommend.engine_users`), a user's
rating of item ``i`` is ``base_i + x_i·θ`` with ``θ ~ N(m + W a, diag(s²))`` and noise ``σ²``, so
adapting a user is one exact posterior (weight form of :mod:`personalize.engine.gaussian`) over
the rows ``x_i`` of the items they rated.

>>> tables = ItemTables.empty(torch.eye(3), torch.full((3,), 3.5), noise_variance=0.5)
>>> items, ratings, mask = torch.tensor([[0, 1]]), torch.tensor([[5.0, 2.0]]), torch.ones(1, 2)
>>> mean, variance = tables.predict(tables.posterior(items, ratings, mask), torch.tensor([[0, 1, 2]]))
>>> bool(mean[0, 0] > 3.5 > mean[0, 1]), float(mean[0, 2])     # item 2 shares nothing with them
(True, 3.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from personalize.engine.gaussian import (
    SupportPosterior,
    WeightPosterior,
    gram_and_moment,
    kernel_posterior,
    weight_posterior,
)


@dataclass
class ItemTables:
    """Item feature rows and base scores, how text maps to them (for new items), the user prior and
    the rating noise, and the pick vectors that rank what a user is likely to choose."""

    features: torch.Tensor          # [M, D]
    base: torch.Tensor              # [M]
    text_weights: torch.Tensor      # [H, 1 + S]: text features -> (item bias, the item's collaborative vector)
    global_mean: torch.Tensor       # scalar: the base score of an item whose bias is zero
    prior_mean: torch.Tensor        # [D]
    prior_variance: torch.Tensor    # [D]
    noise_variance: torch.Tensor    # scalar
    implicit: torch.Tensor          # [M, k]: PureSVD vectors of who rated what (zero for added items)
    implicit_default: torch.Tensor  # [k]: the pick profile of a user with no rating (popularity)
    attribute_weights: torch.Tensor  # [D, A]: user attribute vector -> shift of the prior mean (A = 0: none)

    @classmethod
    def empty(cls, features: torch.Tensor, base: torch.Tensor, *, noise_variance: float = 1.0) -> ItemTables:
        """Tables over ``features`` [M, D] and ``base`` [M] with a standard prior, no text map, no pick
        vectors and no attributes (for tests and examples)."""
        size = features.shape[1]
        return cls(features, base, torch.zeros(0, 1), torch.tensor(float(base.mean())), torch.zeros(size),
                   torch.ones(size), torch.tensor(float(noise_variance)), torch.zeros(len(base), 0), torch.zeros(0),
                   torch.zeros(size, 0))

    def user_prior_mean(self, attributes: torch.Tensor | None) -> torch.Tensor:
        """The prior mean of every user [D], or [U, D] from attribute vectors [U, A]."""
        if attributes is None:
            return self.prior_mean
        return self.prior_mean + attributes @ self.attribute_weights.T

    def item_features(self, items: torch.Tensor, hidden: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows [..., D] and base scores [...] of catalogue positions of any shape (``hidden``
        is accepted for the rating model's signature and unused: every row here is final)."""
        return self.features[items], self.base[items]

    def posterior(self, items: torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor,
                  hidden: torch.Tensor | None = None, attributes: torch.Tensor | None = None
                  ) -> WeightPosterior | SupportPosterior:
        """Every user's posterior from their rated positions [U, N] and ratings [U, N] (``mask`` marks
        real entries) and, for a recommender with attributes, their attribute vectors [U, A].

        In weight form when the rows are at least as wide as the widest history (the built-in
        model's 11 features), else in kernel form (:class:`SupportPosterior`: an engine
        recommender's ~400 features against tens of ratings), whichever costs less.
        """
        features, base = self.item_features(items)
        prior_mean = self.user_prior_mean(attributes)
        if items.shape[1] >= features.shape[-1]:
            return weight_posterior(*gram_and_moment(features, ratings - base, mask), prior_mean,
                                    self.prior_variance, self.noise_variance)
        residuals = ratings - base - (features * prior_mean.unsqueeze(-2)).sum(-1)
        kernel = kernel_posterior(features, residuals, mask, self.prior_variance, self.noise_variance)
        return SupportPosterior(kernel, prior_mean, self.prior_variance)

    def predict(self, posterior: WeightPosterior | SupportPosterior, items: torch.Tensor,
                hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance [U, N] of each user's ratings of positions [U, N]."""
        features, base = self.item_features(items)
        return posterior.predictive(features, base, self.noise_variance)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.contiguous() for name, value in vars(self).items()}
