"""The one Gaussian posterior (``engine/gaussian.py``): both forms against the textbook formula and
each other, unpadded rows against padded ones, and the two model-based users of it (the ``bayes``
learner and the recommender) against the same maths."""

from __future__ import annotations

import numpy as np
import torch

from personalize.engine.gaussian import (
    gram_and_moment,
    grouped_gram_and_moment,
    kernel_posterior,
    kernel_predictive,
    ridge_solve,
    weight_posterior,
    weight_predictive,
)


def _problem(seed: int, tasks: int = 3, rows: int = 6, dim: int = 4):
    rng = np.random.default_rng(seed)
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    mask = (rng.random((tasks, rows)) < 0.7).astype(float)
    mask[0] = 0.0  # a task with no row
    return (as_tensor(rng.normal(size=(tasks, rows, dim))), as_tensor(rng.normal(size=(tasks, rows))), as_tensor(mask),
            as_tensor(rng.normal(size=dim)), as_tensor(rng.uniform(0.3, 2.0, dim)),
            torch.tensor(0.35, dtype=torch.float64))


def test_weight_and_kernel_forms_give_the_same_predictive_distribution() -> None:
    features, targets, mask, prior_mean, prior_variance, noise = _problem(0)
    query = torch.as_tensor(np.random.default_rng(1).normal(size=(3, 5, 4)))
    weights = weight_posterior(*gram_and_moment(features, targets, mask), prior_mean, prior_variance, noise)
    weight_mean, weight_var = weight_predictive(weights, query, torch.zeros(3, 5), noise)
    kernel = kernel_posterior(features, targets - features @ prior_mean, mask, prior_variance, noise)
    correction, kernel_var = kernel_predictive(kernel, query, prior_variance)
    # (rtol: the weight form adds a 1e-5 jitter to the prior precision)
    np.testing.assert_allclose(weight_mean, query @ prior_mean + correction.squeeze(-1), rtol=1e-4)
    np.testing.assert_allclose(weight_var, kernel_var + noise, rtol=1e-4)
    # The task without rows keeps its prior in both forms.
    np.testing.assert_allclose(weight_mean[0], query[0] @ prior_mean, atol=1e-4)
    np.testing.assert_allclose(kernel_var[0], (query[0] ** 2 * prior_variance).sum(-1), atol=1e-6)


def test_weight_posterior_takes_one_prior_mean_per_task() -> None:
    features, targets, mask, _, prior_variance, noise = _problem(2)
    per_task = torch.as_tensor(np.random.default_rng(3).normal(size=(3, 4)))
    joint = weight_posterior(*gram_and_moment(features, targets, mask), per_task, prior_variance, noise)
    for task in range(3):
        alone = weight_posterior(*gram_and_moment(features[task:task + 1], targets[task:task + 1], mask[task:task + 1]),
                                 per_task[task], prior_variance, noise)
        np.testing.assert_allclose(joint.mean[task], alone.mean[0], atol=1e-10)
    np.testing.assert_allclose(joint.mean[0], per_task[0], rtol=1e-4)  # no rows: the task's own prior mean


def test_grouped_rows_match_padded_rows_whatever_the_step() -> None:
    features, targets, mask, *_ = _problem(4, tasks=5, rows=9)
    keep = mask.bool()
    groups = torch.arange(5)[:, None].expand_as(mask)[keep]
    padded = gram_and_moment(features, targets, mask)
    for step in (1, 4, 1000):
        grouped = grouped_gram_and_moment(features[keep], targets[keep], groups, 5, rows_per_step=step)
        for a, b in zip(grouped, padded):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_ridge_solve_is_numpys_least_squares_with_a_ridge() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    expected = np.linalg.solve(x.T @ x + 2.5 * np.eye(3), x.T @ y)
    gram, moment = torch.as_tensor(x.T @ x)[None], torch.as_tensor(x.T @ y)[None]
    np.testing.assert_allclose(ridge_solve(gram, moment, 2.5)[0], expected, rtol=1e-4)


def test_the_bayes_learner_predicts_what_the_weight_form_predicts_on_its_features() -> None:
    from personalize.encoder import tiny_encoder
    from personalize.engine.batch import collate_tasks
    from personalize.engine.config import HeadConfig
    from personalize.learners import BayesianConfig, BayesianHead

    torch.manual_seed(0)
    learner = BayesianHead(tiny_encoder(), BayesianConfig(head=HeadConfig(kind="regression")))
    with torch.no_grad():
        learner.log_prior_std.uniform_(-1.0, 0.5)  # a prior that differs per feature
    support = collate_tasks(learner.encoder, [["good film", "bad film", "fine"]], [[5.0, 1.0, 3.0]], kind="regression")
    query = collate_tasks(learner.encoder, [["great film", "awful"]], [[0.0, 0.0]], kind="regression")
    prediction = learner.predict(learner.adapt(support), query)
    with torch.no_grad():
        phi, psi = learner.embed(support).double(), learner.embed(query).double()
        weight, bias = learner.init["head_weight"].double()[0], learner.init["head_bias"].double()[0]
        posterior = weight_posterior(*gram_and_moment(phi, support.targets.double() - bias, torch.ones(1, 3)),
                                     weight, learner.prior_variance.double(), learner.noise_variance.double())
        mean, variance = weight_predictive(posterior, psi, bias.expand(1, 2), learner.noise_variance.double())
    np.testing.assert_allclose(prediction.outputs.double(), mean, atol=1e-4)
    np.testing.assert_allclose(prediction.variance.double(), variance, atol=1e-4)


def test_the_kernel_form_seen_over_the_weights_matches_the_weight_form() -> None:
    """SupportPosterior (what a user with fewer ratings than features is adapted as) gives the weight
    form's mean, covariance and predictive, per task and after selecting one task's real rows."""
    from personalize.engine.gaussian import SupportPosterior

    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 6, generator=generator, dtype=torch.float64)
    targets = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    prior_mean = torch.randn(2, 6, generator=generator, dtype=torch.float64)  # a prior per task
    prior_variance = torch.rand(6, generator=generator, dtype=torch.float64) + 0.2
    noise = torch.tensor(0.4, dtype=torch.float64)
    weights = weight_posterior(*gram_and_moment(features, targets, mask), prior_mean, prior_variance, noise,
                               jitter=0.0)
    residuals = targets - (features * prior_mean[:, None]).sum(-1)
    support = SupportPosterior(kernel_posterior(features, residuals, mask, prior_variance, noise), prior_mean,
                               prior_variance)
    torch.testing.assert_close(support.mean, weights.mean)
    torch.testing.assert_close(support.covariance, weights.covariance)
    query, base = torch.randn(5, 6, generator=generator, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for got, expected in zip(support.predictive(query, base, noise), weights.predictive(query, base, noise)):
        torch.testing.assert_close(got, expected)
    second = support.select(1, rows=2)
    assert second.kernel.features.shape == (1, 2, 6)
    torch.testing.assert_close(second.mean, weights.mean[1:2])
    torch.testing.assert_close(second.covariance, weights.covariance[1:2])
    torch.testing.assert_close(second.predictive(query, base, noise)[1],
                               weights.select(1).predictive(query, base, noise)[1])
