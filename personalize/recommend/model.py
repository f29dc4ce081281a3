"""The rating model: item features from collaborative filtering and text, and the user prior.

An item ``i`` has a feature row ``x_i = [1, z_i]`` and a base score ``base_i``. For an item rated
in training, ``z_i = q_i`` and ``base_i = μ + β_i`` come from matrix factorisation of the training
log (``warm_start``). An item known only by its text gets ``z_i = P e_i`` and ``base_i = μ + h·e_i``,
where ``e_i`` is its text through the frozen encoder and ``P``, ``h`` a ridge regression from text
to the trained items' ``q`` and ``β`` (:func:`fit_text_regression`).

A user's rating is ``base_i + x_i·θ``; the user's weights ``θ`` (bias first) have the meta-learned
prior ``N(m + W a, diag(s²))`` and ratings the learned noise σ, where ``a`` is the user's attribute
vector (:mod:`personalize.recommend.attributes`; none, and no ``W``, without attributes). Adapting
to a user is the exact posterior (weight form of :mod:`personalize.engine.gaussian`); meta-training
backpropagates the query likelihood of held-out users through it into the prior, the noise and μ.
``hidden`` items are scored from their text even when they have their own parameters (meta-training
hides some, so that the prior also fits items that are new).

>>> import torch
>>> from personalize.recommend.config import RecommenderConfig
>>> model = RatingModel(RecommenderConfig(factors=4), torch.randn(6, 8), 3.5, torch.zeros(6), torch.randn(6, 4))
>>> features, base = model.item_features(torch.tensor([[0, 1, 2]]))
>>> features.shape, base.shape
(torch.Size([1, 3, 5]), torch.Size([1, 3]))
"""

from __future__ import annotations

import math

import torch

from personalize.engine.gaussian import WeightPosterior, gram_and_moment, weight_posterior, weight_predictive
from personalize.recommend.config import RecommenderConfig


def fit_text_regression(embeddings: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                        ridge: float) -> torch.Tensor:
    """Weighted ridge regression from text embeddings [M, H] to targets [M, T]; returns [H, T].

    >>> x = torch.eye(3)
    >>> fit_text_regression(x, 2 * x, torch.ones(3), ridge=1e-6).diagonal().round().tolist()
    [2.0, 2.0, 2.0]
    """
    weighted = embeddings * weights.unsqueeze(-1)
    gram = weighted.T @ embeddings + ridge * torch.eye(embeddings.shape[1])
    return torch.linalg.solve(gram, weighted.T @ targets)


class RatingModel(torch.nn.Module):
    """Item features, base scores and the user prior, for a fixed catalogue of M items.

    Args:
        config: the model's settings and starting values.
        text_embeddings: [M, H] unit-length encoder embeddings of the items' texts.
        global_mean: the mean training rating (μ starts there).
        item_bias, item_vectors: [M] and [M, factors], the items' own parameters (from the warm start;
            zero for items nobody rated).
        attribute_width: length of a user's attribute vector (0: users have none).
    """

    def __init__(self, config: RecommenderConfig, text_embeddings: torch.Tensor, global_mean: float,
                 item_bias: torch.Tensor, item_vectors: torch.Tensor, attribute_width: int = 0) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("text_embeddings", text_embeddings.float())
        self.register_buffer("item_bias", item_bias.float().clone())
        self.register_buffer("item_vectors", item_vectors.float().clone())
        self.register_buffer("text_weights", torch.zeros(text_embeddings.shape[1], config.factors + 1))
        self.register_buffer("rated", torch.ones(len(item_bias), dtype=torch.bool))
        self.global_mean = torch.nn.Parameter(torch.tensor(float(global_mean)))
        size = config.feature_size
        self.prior_mean = torch.nn.Parameter(torch.zeros(size))
        self.register_buffer("attribute_weights", torch.zeros(size, attribute_width))  # fitted after training
        self.prior_log_std = torch.nn.Parameter(torch.full((size,), math.log(config.initial_prior_std)))
        self.noise_log_std = torch.nn.Parameter(torch.tensor(math.log(config.initial_noise_std)))

    def fit_text(self, popularity: torch.Tensor) -> None:
        """Fit the text regression to the items' own parameters, weighting each rated item by
        ``sqrt(its rating count)`` (items nobody rated are left out)."""
        targets = torch.cat([self.item_bias.unsqueeze(-1), self.item_vectors], dim=-1)
        weights = popularity.float().sqrt()
        self.rated.copy_(popularity > 0)
        self.text_weights.copy_(fit_text_regression(self.text_embeddings, targets, weights, self.config.text_ridge))

    @property
    def noise_variance(self) -> torch.Tensor:
        return torch.exp(2 * self.noise_log_std)

    @property
    def prior_variance(self) -> torch.Tensor:
        return torch.exp(2 * self.prior_log_std)

    def text_features(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows [..., D] and base scores [...] of items known by their text embedding only."""
        predicted = embeddings @ self.text_weights
        ones = torch.ones_like(predicted[..., :1])
        return torch.cat([ones, predicted[..., 1:]], dim=-1), self.global_mean + predicted[..., 0]

    def item_features(self, items: torch.Tensor, hidden: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows [..., D] and base scores [...] of catalogue items (indices of any shape).

        ``hidden`` (bool, same shape as ``items``) marks items to score from their text alone. With
        ``use_item_parameters=False`` every item is.
        """
        ones = torch.ones_like(self.item_bias[items]).unsqueeze(-1)
        features = torch.cat([ones, self.item_vectors[items]], dim=-1)
        base = self.global_mean + self.item_bias[items]
        if not self.config.use_item_parameters:
            hidden = torch.ones_like(items, dtype=torch.bool)
        elif self.config.use_text:  # items nobody rated in training have only their text
            hidden = ~self.rated[items] if hidden is None else hidden | ~self.rated[items]
        if hidden is None or not self.config.use_text:
            return features, base
        text_features, text_base = self.text_features(self.text_embeddings[items])
        return (torch.where(hidden.unsqueeze(-1), text_features, features),
                torch.where(hidden, text_base, base))

    def user_prior_mean(self, attributes: torch.Tensor | None) -> torch.Tensor:
        """The prior mean [D] of every user, or [U, D] from their attribute vectors [U, A]."""
        if attributes is None:
            return self.prior_mean
        return self.prior_mean + attributes @ self.attribute_weights.T

    def posterior(self, items: torch.Tensor, ratings: torch.Tensor, mask: torch.Tensor,
                  hidden: torch.Tensor | None = None, attributes: torch.Tensor | None = None) -> WeightPosterior:
        """Every user's posterior from their rated items [U, N] (``mask`` marks real entries) and,
        when the model has them, their attribute vectors [U, A]."""
        features, base = self.item_features(items, hidden)
        return weight_posterior(*gram_and_moment(features, ratings - base, mask), self.user_prior_mean(attributes),
                                self.prior_variance, self.noise_variance)

    def predict(self, posterior: WeightPosterior, items: torch.Tensor, hidden: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance [U, N] of each user's ratings of ``items`` [U, N]."""
        features, base = self.item_features(items, hidden)
        return weight_predictive(posterior, features, base, self.noise_variance)

    @torch.no_grad()
    def catalogue_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature rows [M, D] and base scores [M] of every training item: all inference needs."""
        features, base = self.item_features(torch.arange(len(self.text_embeddings)))
        return features.detach().clone(), base.detach().clone()
