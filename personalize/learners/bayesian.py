"""A learned Gaussian prior over the task head, turned into a posterior in closed form (model-based).

Features φ(x) come from the shared, meta-learned adapters (L2-normalised), followed by the
example's side features when the head takes any (``HeadConfig.side_features``). Each task's head is
linear, ``y = w·φ(x) + b + noise``, with a meta-learned prior ``w ~ N(μ0, diag(s²))`` and noise
``N(0, σ²)``. Given a task's support set the posterior is exact (Bayesian linear regression, in its
kernel form of :mod:`personalize.engine.gaussian`, so the cost grows with the support size, not the
feature size):

    K = Φ S0 Φᵀ + σ² I,        α = K⁻¹ (y - Φ μ0 - b)
    mean(x) = φ·μ0 + b + φ S0 Φᵀ α
    var(x)  = σ² + φ S0 φ - ‖L⁻¹ Φ S0 φ‖²       (L L ᵀ = K)

Meta-training maximises the query likelihood under this posterior predictive, so the prior, the
noise and the adapters are all learned so that a few support points give a good, calibrated fit.
The predictive variance is returned with every prediction: it says which items the model knows
least about (the recommender uses it to choose what to ask a new user). Classification regresses
one-hot targets per class and turns the predictive mean and variance into probabilities with the
probit approximation.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.engine.batch import collate_tasks
>>> from personalize.engine.config import HeadConfig
>>> learner = BayesianHead(tiny_encoder(), BayesianConfig(head=HeadConfig(kind="regression")))
>>> support = collate_tasks(learner.encoder, [["good film", "bad film"]], [[5.0, 1.0]], kind="regression")
>>> prediction = learner.predict(learner.adapt(support), support)
>>> prediction.outputs.shape, bool((prediction.variance > 0).all())
(torch.Size([1, 2]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.gaussian import GaussianHead, KernelPosterior, gaussian_nll, kernel_posterior, kernel_predictive
from personalize.engine.inner_loop import task_accuracy
from personalize.errors import require
from personalize.learners.base import LearnerConfig, MetaLearner, Prediction, TaskState


@dataclass(frozen=True)
class BayesianConfig(LearnerConfig):
    """Starting values of the learned prior and noise."""

    initial_prior_std: float = 1.0
    """Prior standard deviation of every head weight (features are unit-norm)."""
    initial_noise_std: float = 0.5
    """Observation noise standard deviation (in target units: ratings, or one-hot scores)."""
    initial_scale: float = 5.0
    """Classification only: temperature turning the per-class predictive mean into logits."""

    def __post_init__(self) -> None:
        for name in ("initial_prior_std", "initial_noise_std", "initial_scale"):
            value = getattr(self, name)
            require(value > 0, f"BayesianConfig.{name} must be > 0, got {value!r}")


class BayesianHead(MetaLearner):
    """Shared adapters + a meta-learned Gaussian prior over each task's linear head."""

    name = "bayes"
    family = "model"
    config_class = BayesianConfig
    config: BayesianConfig

    def __init__(self, encoder: Encoder, config: BayesianConfig | None = None) -> None:
        super().__init__(encoder, config)
        features = self.model.feature_size  # the pooled embedding, then any side features
        self.log_prior_std = torch.nn.Parameter(torch.full((features,), math.log(self.config.initial_prior_std)))
        self.log_noise_std = torch.nn.Parameter(torch.tensor(math.log(self.config.initial_noise_std)))
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(self.config.initial_scale)))

    def embed(self, batch: TaskBatch, training: bool = False) -> torch.Tensor:
        return self.shared_features(batch, training, normalize_text=True).float()

    def targets(self, batch: TaskBatch) -> torch.Tensor:
        """Regression targets [T, N, outputs]: the score, or the one-hot class."""
        if self.kind == "regression":
            return batch.targets.float()[..., None]
        return F.one_hot(batch.targets, self.config.head.num_classes).float()

    def prior_mean(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.init["head_weight"].T + self.init["head_bias"]

    # --- closed-form posterior --------------------------------------------------------------------

    def posterior(self, features: torch.Tensor, support: TaskBatch) -> TaskState:
        """Per-task kernel-form posterior from support features [T, N, H] (:mod:`personalize.engine.gaussian`)."""
        mask = support.example_mask.float()
        residuals = self.targets(support) - self.prior_mean(features)
        posterior = kernel_posterior(features, residuals, mask, self.prior_variance, self.noise_variance)
        return {"support_features": posterior.features, "alpha": posterior.alpha, "cholesky": posterior.cholesky}

    def posterior_predictive(self, state: TaskState, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean [T, M, outputs] and epistemic variance [T, M] (noise excluded) at query features."""
        posterior = KernelPosterior(state["support_features"], state["alpha"], state["cholesky"])
        correction, variance = kernel_predictive(posterior, features, self.prior_variance)
        return self.prior_mean(features) + correction, variance

    @property
    def prior_variance(self) -> torch.Tensor:
        return self.log_prior_std.exp().pow(2)

    @property
    def noise_variance(self) -> torch.Tensor:
        return self.log_noise_std.exp().pow(2)

    def outputs(self, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """Logits (probit-corrected) for classification; the mean score for regression."""
        if self.kind == "regression":
            return mean.squeeze(-1)
        scale = self.log_scale.exp()
        return scale * mean / torch.sqrt(1 + math.pi / 8 * scale.pow(2) * variance)[..., None]

    # --- the Gaussian head, for callers that hold every input's features -----------------------------

    def gaussian_head(self) -> GaussianHead | None:
        """Regression: ``target = b + φ·w + noise``, ``w ~ N(μ0, diag(s²))`` (classification: None)."""
        if self.kind != "regression":
            return None
        with torch.no_grad():
            return GaussianHead(self.init["head_weight"][0].detach().float().clone(),
                                self.prior_variance.detach().float().clone(),
                                self.init["head_bias"][0].detach().float().clone(),
                                self.noise_variance.detach().float().clone())

    @torch.no_grad()
    def inference_features(self, batch: TaskBatch) -> torch.Tensor:
        with self.encoder.autocast(inference=True):
            return self.embed(batch).float()

    # --- the MetaLearner interface ------------------------------------------------------------------

    def meta_loss(self, support: TaskBatch, query: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        with self.encoder.autocast():
            support_features = self.embed(support, training=True)
            query_features = self.embed(query, training=True)
        mean, variance = self.posterior_predictive(self.posterior(support_features, support), query_features)
        outputs = self.outputs(mean, variance)
        if self.kind == "regression":
            nll = gaussian_nll(outputs, variance + self.noise_variance, query.targets, query.example_mask.float())
            loss = nll.mean() + 0.5 * math.log(2 * math.pi)
            return loss, {"nll": loss.item(), "mse": self.prediction_loss(Prediction(outputs), query).mean().item()}
        loss = self.prediction_loss(Prediction(outputs), query).mean()
        accuracy = task_accuracy(outputs, query.targets, query.example_mask).mean().item()
        return loss, {"loss": loss.item(), "accuracy": accuracy}

    @torch.no_grad()
    def adapt(self, support: TaskBatch) -> TaskState:
        return self.posterior(self.inference_features(support), support)

    @torch.no_grad()
    def predict(self, state: TaskState, inputs: TaskBatch) -> Prediction:
        features = self.inference_features(inputs)
        mean, variance = self.posterior_predictive(state, features)
        if self.kind == "regression":
            variance = variance + self.noise_variance
        return Prediction(self.outputs(mean, variance), variance)
