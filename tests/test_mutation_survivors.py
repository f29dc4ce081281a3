"""Tests that kill the mutants the mutation pass of docs/mutation.md found surviving.

Each test states a property of the learners or the recommender metrics that the rest of the suite
ran through but never checked: that an error names the argument at fault, that the metrics compute
in float64 whatever the input dtype, that a learner's meta-gradient is the gradient of its own
objective (against finite differences or a plain autograd reference), and so on. They use the tiny
random encoder and run in seconds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from personalize.encoder import tiny_encoder
from personalize.engine.batch import TaskBatch, collate_tasks, concat_examples
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.inner_loop import adapt_by_gradient, expand_to_tasks, gradient_steps, task_losses
from personalize.errors import ConfigError, EpisodeError
from personalize.learners import (
    LEARNERS,
    FOMAMLConfig,
    LearnerConfig,
    MAMLConfig,
    MetaLearner,
    MetaSGDConfig,
    PooledConfig,
    Prediction,
    ProtoNetConfig,
    ReptileConfig,
    create_learner,
    learner_class,
)
from personalize.learners.bayesian import BayesianConfig
from personalize.recommend.metrics import full_catalogue_topk, mae, mean_ci, ndcg_at_k, precision_at_k, rmse

# --- metrics: every error names the argument at fault ------------------------------------------

PAIRED = [(mae, ("pred", "true")), (rmse, ("pred", "true")),
          (precision_at_k, ("scores", "ratings")), (ndcg_at_k, ("scores", "ratings"))]


@pytest.mark.parametrize(("metric", "names"), PAIRED, ids=lambda value: getattr(value, "__name__", ""))
def test_paired_metric_errors_name_the_argument_at_fault(metric, names: tuple[str, str]) -> None:
    first, second = names
    with pytest.raises(ConfigError, match=rf"^{first} must be 1-D, got shape \(1, 2\)$"):
        metric([[1.0, 2.0]], [1.0, 2.0])
    with pytest.raises(ConfigError, match=rf"^{second} must be 1-D, got shape \(2, 1\)$"):
        metric([1.0, 2.0], [[1.0], [2.0]])
    with pytest.raises(ConfigError, match=rf"^{first} must not be empty$"):
        metric([], [1.0])
    with pytest.raises(ConfigError, match=rf"^{second} must not be empty$"):
        metric([1.0], [])
    with pytest.raises(ConfigError, match=rf"^{first} and {second} differ in length: 2 != 3$"):
        metric([1.0, 2.0], [1.0, 2.0, 3.0])


def test_full_catalogue_errors_name_the_argument_at_fault() -> None:
    scores, no, yes = np.array([0.3, 0.2, 0.1]), np.zeros(3, bool), np.ones(3, bool)
    with pytest.raises(ConfigError, match=r"^scores must be 1-D"):
        full_catalogue_topk(scores[None], no, yes)
    with pytest.raises(ConfigError, match=r"^scores must not be empty$"):
        full_catalogue_topk([], no[:0], no[:0])
    with pytest.raises(ConfigError, match=r"^seen_mask must be a boolean array, got dtype int"):
        full_catalogue_topk(scores, np.zeros(3, int), yes)
    with pytest.raises(ConfigError, match=r"^relevant_mask must be a boolean array, got dtype float"):
        full_catalogue_topk(scores, no, np.ones(3))
    with pytest.raises(ConfigError, match=r"^seen_mask must have shape \(3,\) like scores, got \(2,\)$"):
        full_catalogue_topk(scores, no[:2], yes)
    with pytest.raises(ConfigError, match=r"^relevant_mask must have shape \(3,\) like scores, got \(4,\)$"):
        full_catalogue_topk(scores, no, np.ones(4, bool))
    with pytest.raises(ConfigError, match=r"^an item cannot be both seen \(support\) and relevant \(held out\)$"):
        full_catalogue_topk(scores, yes, yes)


def test_mean_ci_error_names_its_argument() -> None:
    with pytest.raises(ConfigError, match=r"^values must be 1-D, got shape \(1, 2\)$"):
        mean_ci([[1.0, 2.0]])


# --- metrics: float64 whatever the input dtype ----------------------------------------------------


def test_rating_metrics_do_not_wrap_around_on_unsigned_integer_ratings() -> None:
    """Ratings stored as uint8 (as MovieLens frames may hold them): 1 - 3 must be -2, not 254."""
    pred, true = np.array([1, 5, 3], dtype=np.uint8), np.array([3, 4, 3], dtype=np.uint8)
    as_float = pred.astype(float), true.astype(float)
    assert mae(pred, true) == mae(*as_float) == pytest.approx(1.0)
    assert rmse(pred, true) == rmse(*as_float) == pytest.approx(np.sqrt(5 / 3))


def test_mean_ci_computes_in_float64_for_half_precision_values() -> None:
    values = np.array([0.1, 0.2, 0.4, 0.7], dtype=np.float16)
    assert mean_ci(values) == mean_ci(values.astype(np.float64))


# --- metrics: the defaults are the cut-offs the benchmark reports (P@5, nDCG@5, Recall/NDCG@10) ---


def test_default_cutoffs_are_five_within_the_query_and_ten_over_the_catalogue() -> None:
    rng = np.random.default_rng(0)
    scores, ratings = rng.permutation(12) / 12, rng.integers(1, 6, 12)
    by_k = {k: (precision_at_k(scores, ratings, k=k), ndcg_at_k(scores, ratings, k=k)) for k in (5, 6)}
    assert by_k[5] != by_k[6]  # the data tells 5 from 6 apart
    assert (precision_at_k(scores, ratings), ndcg_at_k(scores, ratings)) == by_k[5]

    catalogue = rng.permutation(30) / 30
    seen = np.zeros(30, bool)
    relevant = np.zeros(30, bool)
    relevant[np.argsort(-catalogue)[[0, 3, 10]]] = True  # ranks 1, 4 and 11: in the top 11, not all in the top 10
    assert full_catalogue_topk(catalogue, seen, relevant, k=10) != full_catalogue_topk(catalogue, seen, relevant, k=11)
    assert full_catalogue_topk(catalogue, seen, relevant) == full_catalogue_topk(catalogue, seen, relevant, k=10)


# === learners ====================================================================================

ENCODER = tiny_encoder(seed=0)
ADAPTER = AdapterConfig(rank=2, target_modules=("query", "value"))


def _classification(texts=(["a good film", "a bad film", "good", "so bad"], ["fine", "awful", "nice"]),
                    labels=([1, 0, 1, 0], [1, 0, 1])) -> TaskBatch:
    return collate_tasks(ENCODER, [list(t) for t in texts], [list(y) for y in labels], kind="classification")


def _regression(texts=(["a good film", "a bad film", "ok film"], ["great", "awful"]),
                targets=([5.0, 1.0, 3.0], [4.0, 2.0])) -> TaskBatch:
    return collate_tasks(ENCODER, [list(t) for t in texts], [list(y) for y in targets], kind="regression")


def _query_classification() -> TaskBatch:
    return _classification((["good good", "bad bad", "meh"], ["lovely", "terrible"]), ([1, 0, 1], [1, 0]))


def _query_regression() -> TaskBatch:
    return _regression((["fine film", "poor film"], ["nice"]), ([4.0, 2.0], [4.0]))


def _learner(name: str, kind: str = "classification", **fields):
    torch.manual_seed(0)
    learner = create_learner(name, ENCODER, adapter=ADAPTER, head=HeadConfig(kind=kind), **fields)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # LoRA B and the head start at zero: give every meta-parameter a generic value
        for value in learner.init.values():
            value.add_(0.1 * torch.randn(value.shape, generator=generator))
    return learner


# --- configs: defaults, boundaries, messages naming the class and field -----------------------------


def test_learner_config_defaults() -> None:
    assert LearnerConfig().seed == 0
    assert (MAMLConfig().inner_steps, MAMLConfig().inner_lr, MAMLConfig().first_order) == (5, 0.1, False)
    for config_class in (FOMAMLConfig, MetaSGDConfig, ReptileConfig, PooledConfig):
        assert config_class().first_order is True, config_class
    assert (BayesianConfig().initial_prior_std, BayesianConfig().initial_noise_std,
            BayesianConfig().initial_scale) == (1.0, 0.5, 5.0)
    proto = ProtoNetConfig()
    assert (proto.distance, proto.objective, proto.initial_scale) == ("cosine", "prototypical", 10.0)


@pytest.mark.parametrize("config_class", [MAMLConfig, FOMAMLConfig, MetaSGDConfig, ReptileConfig, PooledConfig])
def test_inner_loop_config_boundaries_and_messages(config_class) -> None:
    name = config_class.__name__
    assert config_class(inner_steps=0).inner_steps == 0  # zero steps: no adaptation, allowed
    assert config_class(inner_lr=1e-9).inner_lr == 1e-9
    with pytest.raises(ConfigError, match=rf"^{name}\.inner_steps must be an int >= 0, got -1$"):
        config_class(inner_steps=-1)
    with pytest.raises(ConfigError, match=rf"^{name}\.inner_steps must be an int >= 0, got 1\.5$"):
        config_class(inner_steps=1.5)
    with pytest.raises(ConfigError, match=rf"^{name}\.inner_lr must be > 0, got 0$"):
        config_class(inner_lr=0)


@pytest.mark.parametrize("field_name", ["initial_prior_std", "initial_noise_std", "initial_scale"])
def test_bayesian_config_boundaries_and_messages(field_name: str) -> None:
    assert getattr(BayesianConfig(**{field_name: 1e-9}), field_name) == 1e-9
    with pytest.raises(ConfigError, match=rf"^BayesianConfig\.{field_name} must be > 0, got 0$"):
        BayesianConfig(**{field_name: 0})


def test_protonet_config_boundaries_and_messages() -> None:
    assert ProtoNetConfig(distance="euclidean", objective="pairwise", initial_scale=1e-9).initial_scale == 1e-9
    with pytest.raises(ConfigError, match=r"^ProtoNetConfig\.distance must be 'cosine' or 'euclidean', got 'l1'$"):
        ProtoNetConfig(distance="l1")
    with pytest.raises(ConfigError,
                       match=r"^ProtoNetConfig\.objective must be 'prototypical' or 'pairwise', got 'triplet'$"):
        ProtoNetConfig(objective="triplet")
    with pytest.raises(ConfigError, match=r"^ProtoNetConfig\.initial_scale must be > 0, got 0$"):
        ProtoNetConfig(initial_scale=0)


def test_config_dict_round_trip_and_unknown_fields() -> None:
    config = MAMLConfig(adapter=ADAPTER, head=HeadConfig(kind="regression"), seed=3, inner_steps=2)
    assert MAMLConfig.from_dict(config.to_dict()) == config
    assert MAMLConfig.from_dict({"inner_lr": 0.5}) == MAMLConfig(inner_lr=0.5)
    with pytest.raises(ConfigError, match=r"^MAMLConfig: unknown field\(s\) \['bogus', 'extra'\]$"):
        MAMLConfig.from_dict({"extra": 1, "bogus": 2, "seed": 1})


def test_registry_and_learner_construction_errors() -> None:
    assert learner_class("maml") is LEARNERS["maml"]
    with pytest.raises(ConfigError, match=r"^unknown learner 'nope'; choose among bayes, fomaml, maml, meta-sgd, "
                                          r"pooled, protonet, reptile$"):
        learner_class("nope")
    with pytest.raises(ConfigError, match=r"^pass either a config or config fields, not both$"):
        create_learner("maml", ENCODER, MAMLConfig(), inner_steps=1)
    assert create_learner("maml", ENCODER, MAMLConfig(inner_steps=2)).config.inner_steps == 2
    with pytest.raises(ConfigError, match=r"^MAML needs a MAMLConfig, got ProtoNetConfig$"):
        LEARNERS["maml"](ENCODER, ProtoNetConfig())
    learner = create_learner("fomaml", ENCODER)
    assert learner.config == FOMAMLConfig()
    assert repr(learner).startswith("FOMAML(\n  name='fomaml', family='optimization'")


def test_capabilities_of_learners_without_a_gaussian_head() -> None:
    learner = create_learner("protonet", ENCODER)
    assert learner.gaussian_head() is None
    with pytest.raises(ConfigError, match=r"^the 'protonet' learner has no Gaussian head over shared features; "
                                          r"use one that has \(e\.g\. 'bayes'\)$"):
        learner.inference_features(_classification())

    class GradientOnly(MetaLearner):  # a family that defines meta_gradient and never meta_loss
        name, family = "gradient-only", "optimization"

        def adapt(self, support):
            return {}

        def predict(self, state, inputs):
            return Prediction(torch.zeros(()))

    with pytest.raises(NotImplementedError, match=r"^GradientOnly defines meta_gradient instead of meta_loss$"):
        GradientOnly(ENCODER).meta_loss(_classification(), _classification())
    assert create_learner("bayes", ENCODER).gaussian_head() is None  # classification: no Gaussian head


def test_initial_meta_parameters_follow_the_config() -> None:
    default, seed_0 = (create_learner("maml", ENCODER, **fields).init["layer0_query_A"] for fields in ({}, {"seed": 0}))
    assert torch.equal(default, seed_0)
    assert not torch.equal(default, create_learner("maml", ENCODER, seed=1).init["layer0_query_A"])
    bayes = create_learner("bayes", ENCODER, initial_prior_std=2.0, initial_noise_std=0.25, initial_scale=3.0)
    assert bayes.log_prior_std.shape == (32,)
    torch.testing.assert_close(bayes.log_prior_std.exp(), torch.full((32,), 2.0))
    torch.testing.assert_close(bayes.log_noise_std.exp(), torch.tensor(0.25))
    torch.testing.assert_close(bayes.log_scale.exp(), torch.tensor(3.0))
    proto = create_learner("protonet", ENCODER, initial_scale=4.0)
    assert "head_weight" not in proto.init and "head_bias" not in proto.init
    torch.testing.assert_close(proto.log_scale.exp(), torch.tensor(4.0))
    assert proto.pair_bias.item() == 0.0 and proto.pair_bias.requires_grad
    sgd = create_learner("meta-sgd", ENCODER, inner_lr=0.03)
    assert set(sgd.inner_lrs) == set(sgd.init)
    for key, value in sgd.inner_lrs.items():
        assert value.shape == sgd.init[key].shape and torch.all(value == 0.03), key
    assert set(sgd.inner_learning_rate()) == set(sgd.init)


# --- base: evaluate, features ---------------------------------------------------------------------


def test_evaluate_reports_loss_and_mae_over_real_examples_only() -> None:
    learner = _learner("fomaml", "regression", inner_steps=1)
    support, query = _regression(), _query_regression()  # task 1 of the query has one real example, one padding
    prediction = learner.predict(learner.adapt(support), query)
    metrics = learner.evaluate(support, query)
    assert set(metrics) == {"loss", "mae"}
    real = query.example_mask
    for task in range(2):
        error = (prediction.outputs[task] - query.targets[task])[real[task]]
        torch.testing.assert_close(metrics["mae"][task], error.abs().mean())
        torch.testing.assert_close(metrics["loss"][task], error.pow(2).mean())
    assert not any(value.requires_grad for value in metrics.values())


def test_evaluate_reports_accuracy_for_classification() -> None:
    learner = _learner("fomaml", inner_steps=1)
    support, query = _classification(), _query_classification()
    prediction = learner.predict(learner.adapt(support), query)
    metrics = learner.evaluate(support, query)
    assert set(metrics) == {"loss", "accuracy"}
    for task in range(2):
        real = query.example_mask[task]
        correct = (prediction.outputs[task].argmax(-1) == query.targets[task])[real].float().mean()
        torch.testing.assert_close(metrics["accuracy"][task], correct)
        loss = F.cross_entropy(prediction.outputs[task][real], query.targets[task][real])
        torch.testing.assert_close(metrics["loss"][task], loss)


def test_shared_features_at_inference_equal_the_per_task_training_path() -> None:
    learner = _learner("protonet")
    batch = _classification((["same", "other", "same"], ["other", "same"]), ([1, 0, 1], [0, 1]))
    inference = learner.shared_features(batch)
    training = learner.shared_features(batch, training=True)  # adapter dropout is 0: the same numbers
    torch.testing.assert_close(inference, training, rtol=1e-5, atol=1e-5)
    params = expand_to_tasks(learner.init_params(), batch.num_tasks)
    torch.testing.assert_close(inference, learner.task_features(params, batch), rtol=1e-5, atol=1e-5)
    normalized = learner.shared_features(batch, normalize_text=True)
    torch.testing.assert_close(normalized, F.normalize(inference, dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(learner.task_features(params, batch, normalize_text=True), normalized,
                               rtol=1e-5, atol=1e-5)
    assert inference.shape == (2, 3, 32) and not torch.allclose(normalized, inference)


def test_meta_gradient_is_the_gradient_of_meta_loss() -> None:
    learner = _learner("maml", inner_steps=1)
    support, query = _classification(), _query_classification()
    loss, metrics = learner.meta_loss(support, query)
    expected = torch.autograd.grad(loss, list(learner.parameters()), allow_unused=True)
    learner.zero_grad(set_to_none=True)
    assert learner.meta_gradient(support, query) == metrics
    for (key, parameter), reference in zip(learner.named_parameters(), expected):
        if reference is not None:
            torch.testing.assert_close(parameter.grad, reference, msg=key)


# --- MAML family: the outer objective, first and second order ------------------------------------------


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_maml_meta_loss_is_the_query_loss_after_the_inner_steps(kind: str) -> None:
    learner = _learner("maml", kind, inner_steps=2, inner_lr=0.3)
    support, query = (_classification(), _query_classification()) if kind == "classification" else \
        (_regression(), _query_regression())
    loss, metrics = learner.meta_loss(support, query)
    model = learner.model
    adapted = gradient_steps(model, expand_to_tasks(learner.init_params(), 2), model.prefix_of(support), support,
                             steps=2, learning_rate=0.3)
    outputs = model.forward(adapted, model.prefix_of(query), query.attention_mask)
    expected = task_losses(outputs, query.targets, query.example_mask, kind).mean()
    torch.testing.assert_close(loss, expected)
    assert metrics["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert ("accuracy" in metrics) == (kind == "classification")
    if kind == "classification":
        correct = (outputs.argmax(-1) == query.targets).float() * query.example_mask
        assert metrics["accuracy"] == pytest.approx((correct.sum(1) / query.example_mask.sum(1)).mean().item())


def _meta_gradient(learner, support, query) -> dict[str, torch.Tensor]:
    learner.zero_grad(set_to_none=True)
    learner.meta_gradient(support, query)
    return {key: p.grad.clone() for key, p in learner.named_parameters() if p.grad is not None}


def test_second_order_maml_matches_finite_differences_and_first_order_does_not() -> None:
    support, query = _classification(), _query_classification()
    maml = _learner("maml", inner_steps=1, inner_lr=1.0)
    fomaml = _learner("fomaml", inner_steps=1, inner_lr=1.0)
    second, first = _meta_gradient(maml, support, query), _meta_gradient(fomaml, support, query)
    second = {key.removeprefix("init."): value for key, value in second.items()}
    first = {key.removeprefix("init."): value for key, value in first.items()}
    assert set(second) == set(first) == set(maml.init)
    # The directional derivative along the head weights, by central differences (float32, so a loose tolerance).
    key, eps = "head_weight", 1e-2
    direction = torch.randn(maml.init[key].shape, generator=torch.Generator().manual_seed(1))
    base = maml.init[key].detach().clone()
    maml.init[key].data.copy_(base + eps * direction)
    plus = maml.meta_loss(support, query)[0].item()
    maml.init[key].data.copy_(base - eps * direction)
    minus = maml.meta_loss(support, query)[0].item()
    maml.init[key].data.copy_(base)
    numeric = (plus - minus) / (2 * eps)
    analytic_second, analytic_first = (second[key] * direction).sum().item(), (first[key] * direction).sum().item()
    assert abs(analytic_second - numeric) < 0.05 * abs(numeric) + 1e-4, (analytic_second, numeric)
    assert abs(analytic_first - numeric) > 0.2 * abs(numeric), (analytic_first, numeric)  # the test tells them apart
    # First order: the gradient of the query loss at the adapted weights, the inner gradient a constant.
    model = fomaml.model
    init = expand_to_tasks(fomaml.init_params(), 2)
    adapted = gradient_steps(model, init, model.prefix_of(support), support, steps=1, learning_rate=1.0)
    adapted = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    outputs = model.forward(adapted, model.prefix_of(query), query.attention_mask)
    loss = task_losses(outputs, query.targets, query.example_mask, "classification").mean()
    for name, grad in zip(adapted, torch.autograd.grad(loss, list(adapted.values()))):
        torch.testing.assert_close(first[name], grad.sum(0), rtol=1e-4, atol=1e-6, msg=name)


def test_meta_sgd_learns_its_step_sizes_through_the_inner_update() -> None:
    support, query = _classification(), _query_classification()
    sgd = _learner("meta-sgd", inner_steps=1, inner_lr=0.5)
    fomaml = _learner("fomaml", inner_steps=1, inner_lr=0.5)
    assert sgd.meta_loss(support, query)[0].item() == pytest.approx(fomaml.meta_loss(support, query)[0].item(),
                                                                     rel=1e-5)
    gradients = _meta_gradient(sgd, support, query)
    assert {f"inner_lrs.{key}" for key in sgd.init} <= set(gradients)
    with torch.no_grad():  # a learned step size is used: doubling one changes the loss
        sgd.inner_lrs["head_weight"].mul_(4.0)
    assert sgd.meta_loss(support, query)[0].item() != pytest.approx(fomaml.meta_loss(support, query)[0].item(),
                                                                     rel=1e-4)


def test_maml_meta_loss_runs_in_training_mode() -> None:
    """With adapter dropout, meta-training draws fresh masks (training=True in the inner and outer pass)."""
    support, query = _classification(), _query_classification()
    adapter = dataclasses.replace(ADAPTER, dropout=0.5)
    for name in ("maml", "fomaml", "pooled"):
        torch.manual_seed(0)
        learner = create_learner(name, ENCODER, adapter=adapter, inner_steps=1)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for value in learner.init.values():
                value.add_(0.1 * torch.randn(value.shape, generator=generator))
        losses = set()
        for seed in (1, 2):
            torch.manual_seed(seed)
            losses.add(round(learner.meta_loss(support, query)[0].item(), 6))
        assert len(losses) == 2, name


def test_maml_adapt_takes_the_configured_steps_and_predict_is_float32() -> None:
    learner = _learner("maml", inner_steps=3, inner_lr=0.2)
    support, query = _classification(), _query_classification()
    state = learner.adapt(support)
    expected = adapt_by_gradient(learner.model, learner.init_params(), support, steps=3, learning_rate=0.2)
    for key in expected:
        torch.testing.assert_close(state[key], expected[key])
    prediction = learner.predict(state, query)
    assert prediction.outputs.dtype == torch.float32 and prediction.variance is None
    assert prediction.outputs.shape == (2, 3, 2)


# --- Reptile ---------------------------------------------------------------------------------------


def test_reptile_pseudo_gradient_is_the_step_toward_the_adapted_weights() -> None:
    learner = _learner("reptile", inner_steps=2, inner_lr=0.3)
    support, query = _classification(), _query_classification()
    adapted = adapt_by_gradient(learner.model, learner.init_params(), concat_examples(support, query), steps=2,
                                learning_rate=0.3)
    learner.zero_grad(set_to_none=True)
    metrics = learner.meta_gradient(support, query)
    squared = 0.0
    for key, parameter in learner.init.items():
        direction = parameter.detach() - adapted[key].mean(0)
        torch.testing.assert_close(parameter.grad, direction, msg=key)
        squared += direction.pow(2).sum().item()
    assert set(metrics) == {"reptile_step_norm"}
    assert metrics["reptile_step_norm"] == pytest.approx(math.sqrt(squared), rel=1e-5)
    once = {key: p.grad.clone() for key, p in learner.init.items()}
    learner.meta_gradient(support, query)  # accumulates, like backward()
    for key, parameter in learner.init.items():
        torch.testing.assert_close(parameter.grad, 2 * once[key], msg=key)


# --- pooled transfer --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_pooled_loss_weights_every_real_example_alike(kind: str) -> None:
    learner = _learner("pooled", kind, inner_steps=0)
    support, query = (_classification(), _query_classification()) if kind == "classification" else \
        (_regression(), _query_regression())
    loss, metrics = learner.meta_loss(support, query)
    model = learner.model
    per_task, per_task_correct = [], []
    for task in range(2):
        outputs, targets = [], []
        for batch in (support, query):
            params = expand_to_tasks(learner.init_params(), batch.num_tasks)
            out = model.forward(params, model.prefix_of(batch), batch.attention_mask)[task]
            real = batch.example_mask[task]
            outputs.append(out[real])
            targets.append(batch.targets[task][real])
        out, target = torch.cat(outputs), torch.cat(targets)
        if kind == "classification":
            per_task.append(F.cross_entropy(out, target))
            per_task_correct.append((out.argmax(-1) == target).float().mean())
        else:
            per_task.append((out - target).pow(2).mean())
    torch.testing.assert_close(loss, torch.stack(per_task).mean())
    assert metrics["loss"] == pytest.approx(loss.item())
    if kind == "classification":
        assert metrics["accuracy"] == pytest.approx(torch.stack(per_task_correct).mean().item())
    else:
        assert "accuracy" not in metrics


# --- ProtoNet ----------------------------------------------------------------------------------------


def test_protonet_prototypes_are_class_means_and_absent_classes_score_minus_infinity() -> None:
    learner = _learner("protonet", distance="euclidean")
    features = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
    support = TaskBatch(input_ids=torch.zeros(1, 4, 1, dtype=torch.long), attention_mask=torch.ones(1, 4, 1),
                        targets=torch.tensor([[0, 0, 2, 2]]), example_mask=torch.tensor([[True, True, True, False]]))
    prototypes, counts = learner.prototypes(features, support)
    assert counts.tolist() == [[2.0, 0.0, 1.0]]  # three classes: the targets bring more than the head's two
    torch.testing.assert_close(prototypes, torch.tensor([[[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]]]))
    logits = learner.logits(torch.tensor([[[2.0, 1.0]]]), prototypes, counts)
    scale = learner.log_scale.exp()
    torch.testing.assert_close(logits[0, 0, [0, 2]], -scale * torch.tensor([1.0, 5.0]))
    assert logits[0, 0, 1].item() == -math.inf
    cosine = _learner("protonet")
    raw = cosine.similarity(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[[1.0, 0.0], [0.0, 2.0]]]))
    torch.testing.assert_close(raw, cosine.log_scale.exp() * torch.tensor([[[0.6, 0.8]]]))


def test_protonet_kernel_regression_is_a_softmax_weighted_mean_of_real_support_targets() -> None:
    learner = _learner("protonet", distance="euclidean", initial_scale=1.0)
    queries = torch.tensor([[[0.0, 0.0]]])
    support = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    targets = torch.tensor([[4.0, 1.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    weights = torch.softmax(torch.tensor([-1.0, -4.0]), 0)
    expected = (weights * torch.tensor([4.0, 1.0])).sum()
    torch.testing.assert_close(learner.kernel_regression(queries, support, targets, mask)[0, 0, 0], expected)


def test_protonet_meta_loss_regression_and_classification() -> None:
    learner = _learner("protonet", "regression")
    support, query = _regression(), _query_regression()
    loss, metrics = learner.meta_loss(support, query)
    s_features, q_features = learner.embed(support), learner.embed(query)
    outputs = learner.kernel_regression(q_features, s_features, support.targets, support.example_mask).squeeze(-1)
    expected = task_losses(outputs, query.targets, query.example_mask, "regression").mean()
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    assert metrics == {"loss": pytest.approx(loss.item())}
    prediction = learner.predict(learner.adapt(support), query)
    torch.testing.assert_close(prediction.outputs, outputs, rtol=1e-4, atol=1e-5)

    learner = _learner("protonet")
    support, query = _classification(), _query_classification()
    loss, metrics = learner.meta_loss(support, query)
    prototypes, counts = learner.prototypes(learner.embed(support), support)
    logits = learner.logits(learner.embed(query), prototypes, counts)
    torch.testing.assert_close(loss, task_losses(logits, query.targets, query.example_mask, "classification").mean(),
                               rtol=1e-4, atol=1e-5)
    correct = (logits.argmax(-1) == query.targets).float() * query.example_mask
    assert metrics == {"loss": pytest.approx(loss.item()),
                       "accuracy": pytest.approx((correct.sum(1) / query.example_mask.sum(1)).mean().item())}
    state = learner.adapt(support)
    torch.testing.assert_close(state["prototypes"], prototypes, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(learner.predict(state, query).outputs, logits, rtol=1e-4, atol=1e-4)


def test_protonet_pairwise_loss_is_the_mean_binary_cross_entropy_over_real_pairs() -> None:
    learner = _learner("protonet", objective="pairwise")
    with torch.no_grad():
        learner.pair_bias.fill_(0.3)
    support, query = _classification(), _query_classification()
    loss, metrics = learner.meta_loss(support, query)
    s_features, q_features = learner.embed(support), learner.embed(query)
    terms = []
    for task in range(2):
        q_real, s_real = query.example_mask[task], support.example_mask[task]
        logits = learner.similarity(q_features[task:task + 1], s_features[task:task + 1])[0] + 0.3
        same = (query.targets[task][:, None] == support.targets[task][None, :]).float()
        pair = F.binary_cross_entropy_with_logits(logits, same, reduction="none")
        terms.append(pair[q_real][:, s_real].flatten())
    torch.testing.assert_close(loss, torch.cat(terms).mean(), rtol=1e-4, atol=1e-5)
    assert metrics["loss"] == pytest.approx(loss.item()) and 0.0 <= metrics["accuracy"] <= 1.0


def test_protonet_adapt_refuses_a_task_without_support_examples() -> None:
    learner = _learner("protonet")
    support = _classification()
    empty = dataclasses.replace(support, example_mask=torch.tensor([[True, True, True, True], [False] * 4]))
    with pytest.raises(EpisodeError, match=r"^a task has no support examples at all$"):
        learner.adapt(empty)
    one_class = dataclasses.replace(support, example_mask=torch.tensor([[True, False, False, False],
                                                                         [True, False, False, False]]))
    assert learner.adapt(one_class)["class_counts"].tolist() == [[0.0, 1.0], [0.0, 1.0]]


# --- the Bayesian head ----------------------------------------------------------------------------------


def _blr_reference(features, targets, weight_mean, bias, prior_variance, noise_variance, queries):
    """Bayesian linear regression in weight space, in float64: posterior mean and variance at ``queries``."""
    phi, y = features.double(), targets.double() - bias
    precision = torch.diag(1 / prior_variance.double()) + phi.T @ phi / noise_variance
    covariance = torch.linalg.inv(precision)
    mean = covariance @ (phi.T @ y / noise_variance + weight_mean.double() / prior_variance.double())
    q = queries.double()
    return q @ mean + bias, (q @ covariance * q).sum(-1)


def test_bayes_regression_predicts_the_exact_posterior_and_its_meta_loss_is_the_nll() -> None:
    learner = _learner("bayes", "regression", initial_prior_std=0.7, initial_noise_std=0.4)
    support, query = _regression(), _query_regression()
    state = learner.adapt(support)
    prediction = learner.predict(state, query)
    s_features, q_features = learner.inference_features(support), learner.inference_features(query)
    head = learner.gaussian_head()
    assert head is not None
    torch.testing.assert_close(learner.prior_variance, torch.full((32,), 0.49))
    torch.testing.assert_close(learner.noise_variance, torch.tensor(0.16))
    nll = []
    for task in range(2):
        real = support.example_mask[task]
        mean, epistemic = _blr_reference(s_features[task][real], support.targets[task][real], head.prior_mean,
                                         head.bias, head.prior_variance, head.noise_variance, q_features[task])
        torch.testing.assert_close(prediction.outputs[task].double(), mean, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(prediction.variance[task].double(), epistemic + 0.16, rtol=1e-4, atol=1e-5)
        q_real = query.example_mask[task]
        normal = torch.distributions.Normal(mean[q_real], (epistemic[q_real] + 0.16).sqrt())
        nll.append(-normal.log_prob(query.targets[task][q_real].double()).mean())
    torch.testing.assert_close(head.prior_mean, learner.init["head_weight"][0].detach())
    torch.testing.assert_close(head.bias, learner.init["head_bias"][0].detach())
    for value in (head.prior_mean, head.prior_variance, head.bias, head.noise_variance):
        assert value.dtype == torch.float32 and not value.requires_grad
        value.add_(1.0)  # the head is a copy: changing it leaves the learner alone
    torch.testing.assert_close(learner.gaussian_head().prior_mean, learner.init["head_weight"][0].detach())
    torch.testing.assert_close(learner.gaussian_head().prior_variance, torch.full((32,), 0.49))
    torch.testing.assert_close(learner.gaussian_head().noise_variance, torch.tensor(0.16))
    torch.testing.assert_close(learner.gaussian_head().bias, learner.init["head_bias"][0].detach())
    loss, metrics = learner.meta_loss(support, query)
    torch.testing.assert_close(loss.double(), torch.stack(nll).mean(), rtol=1e-4, atol=1e-4)
    assert metrics["nll"] == pytest.approx(loss.item())
    mse = ((prediction.outputs - query.targets).pow(2) * query.example_mask).sum(1) / query.example_mask.sum(1)
    assert metrics["mse"] == pytest.approx(mse.mean().item(), rel=1e-4)
    features = learner.embed(query)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(2, 2))  # unit-norm text features


def test_bayes_classification_turns_the_posterior_into_probit_corrected_logits() -> None:
    learner = _learner("bayes", initial_scale=2.0)
    support, query = _classification(), _query_classification()
    targets = learner.targets(support)
    assert targets.shape == (2, 4, 2) and torch.equal(targets.argmax(-1), support.targets)
    assert targets.sum(-1).eq(1).all()
    state = learner.adapt(support)
    features = learner.inference_features(query)
    mean, variance = learner.posterior_predictive(state, features)
    prediction = learner.predict(state, query)
    expected = 2.0 * mean / torch.sqrt(1 + math.pi / 8 * 4.0 * variance)[..., None]
    torch.testing.assert_close(prediction.outputs, expected)
    torch.testing.assert_close(prediction.variance, variance)  # no noise added to the class variance
    loss, metrics = learner.meta_loss(support, query)
    torch.testing.assert_close(loss, task_losses(expected, query.targets, query.example_mask,
                                                 "classification").mean(), rtol=1e-4, atol=1e-5)
    correct = (expected.argmax(-1) == query.targets).float() * query.example_mask
    assert metrics == {"loss": pytest.approx(loss.item()),
                       "accuracy": pytest.approx((correct.sum(1) / query.example_mask.sum(1)).mean().item())}


# --- side features: both the support's and the query's reach the objective ------------------------------


@pytest.mark.parametrize("name", ["maml", "pooled", "bayes", "protonet"])
def test_side_features_of_support_and_query_enter_the_meta_loss(name: str) -> None:
    torch.manual_seed(0)
    fields = {"inner_steps": 1} if name in ("maml", "pooled") else {}
    learner = create_learner(name, ENCODER, adapter=ADAPTER, head=HeadConfig(kind="regression", side_features=2),
                             **fields)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in learner.init.values():
            value.add_(0.3 * torch.randn(value.shape, generator=generator))

    def batches(support_scale: float, query_scale: float) -> tuple[TaskBatch, TaskBatch]:
        side = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(1))
        support = collate_tasks(ENCODER, [["item"] * 3, ["item"] * 2], [[5.0, 1.0, 3.0], [4.0, 2.0]],
                                kind="regression", side=[support_scale * side[0], support_scale * side[1, :2]])
        query = collate_tasks(ENCODER, [["item"] * 2, ["item"]], [[4.0, 2.0], [3.0]],
                              kind="regression", side=[query_scale * side[1, 1:], query_scale * side[0, :1]])
        return support, query

    reference = learner.meta_loss(*batches(1.0, 1.0))[0].item()
    assert learner.meta_loss(*batches(2.0, 1.0))[0].item() != pytest.approx(reference, rel=1e-4)
    assert learner.meta_loss(*batches(1.0, 2.0))[0].item() != pytest.approx(reference, rel=1e-4)


# --- meta-training runs the encoder in training mode (adapter dropout on), inference does not ------------


def _record_training_flags(learner) -> list[bool]:
    """Wrap the learner's model.forward and embed (where it has one) to record each call's ``training``."""
    flags: list[bool] = []
    forward = learner.model.forward

    def recording_forward(params, prefix, attention_mask, training=False, side=None):
        flags.append(training)
        return forward(params, prefix, attention_mask, training, side)

    learner.model.forward = recording_forward
    if hasattr(learner, "embed"):
        embed = learner.embed

        def recording_embed(batch, training=False):
            flags.append(training)
            return embed(batch, training)

        learner.embed = recording_embed
    return flags


@pytest.mark.parametrize(("name", "calls"), [("maml", 3), ("fomaml", 3), ("meta-sgd", 3), ("pooled", 2),
                                             ("bayes", 2), ("protonet", 2)])
def test_every_pass_of_meta_loss_is_in_training_mode(name: str, calls: int) -> None:
    learner = _learner(name, inner_steps=2) if name not in ("bayes", "protonet") else _learner(name)
    flags = _record_training_flags(learner)
    learner.meta_loss(_classification(), _query_classification())
    assert flags == [True] * calls  # MAML: 2 inner steps and the query pass; the others: support and query


@pytest.mark.parametrize("name", ["bayes", "protonet"])
def test_dropout_is_drawn_in_meta_training_and_off_at_inference(name: str) -> None:
    torch.manual_seed(0)
    learner = create_learner(name, ENCODER, adapter=dataclasses.replace(ADAPTER, dropout=0.5))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in learner.init.values():
            value.add_(0.3 * torch.randn(value.shape, generator=generator))
    support, query = _classification(), _query_classification()
    losses, outputs = set(), []
    for seed in (1, 2):
        torch.manual_seed(seed)
        losses.add(round(learner.meta_loss(support, query)[0].item(), 6))
        outputs.append(learner.predict(learner.adapt(support), query).outputs)
    assert len(losses) == 2  # fresh dropout masks in training
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)  # none at inference


def test_bayes_one_hot_targets_span_the_heads_classes_even_when_a_support_lacks_some() -> None:
    torch.manual_seed(0)
    learner = create_learner("bayes", ENCODER, adapter=ADAPTER, head=HeadConfig(num_classes=3))
    support = _classification()  # labels 0 and 1 only
    assert learner.targets(support).shape == (2, 4, 3)
    assert learner.predict(learner.adapt(support), _query_classification()).outputs.shape == (2, 3, 3)


def test_protonet_prototypes_span_the_heads_classes_even_when_a_support_lacks_some() -> None:
    learner = _learner("protonet")  # a two-class head, a support of class 0 only
    support = _classification((["good", "fine"],), ([0, 0],))
    prototypes, counts = learner.prototypes(learner.embed(support), support)
    assert prototypes.shape == (1, 2, 32) and counts.tolist() == [[2.0, 0.0]]
    outputs = learner.predict(learner.adapt(support), support).outputs
    assert outputs.shape == (1, 2, 2) and bool((outputs[..., 1] == -math.inf).all())
