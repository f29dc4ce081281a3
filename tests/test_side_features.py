"""Side features: per-example numbers beside the text (a recommender's item vectors), for every learner.

The head reads the pooled text embedding followed by ``TaskBatch.side`` when
``HeadConfig.side_features`` says it takes some. The checks: the features reach every learner's
predictions and meta-gradient, survive save/load, are refused when their width is wrong, and a
closed-form learner fits a signal carried by them alone.
"""

from __future__ import annotations

import pytest
import torch

from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import tiny_encoder
from personalize.engine.batch import collate_tasks, concat_examples
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.prefix_cache import PrefixCache
from personalize.errors import ConfigError
from personalize.learners import LEARNERS, create_learner

ADAPTER = AdapterConfig(rank=2, layers=(1,))
HEAD = HeadConfig(kind="regression", side_features=2)
STEPS = {"inner_steps": 2, "inner_lr": 0.5}
SETTINGS: dict[str, dict] = {"maml": STEPS, "fomaml": STEPS, "meta-sgd": STEPS, "reptile": STEPS, "pooled": STEPS,
                             "protonet": {}, "bayes": {}}


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


def side_batches(encoder, seed: int = 0, support_size: int = 12):
    """Two tasks whose every example has the same text; the rating is 3 + 1.5 x0 - x1 of its side features."""
    generator = torch.Generator().manual_seed(seed)

    def task(n: int) -> tuple[list[str], torch.Tensor, list[float]]:
        side = torch.randn(n, 2, generator=generator)
        return ["the same item"] * n, side, (3 + 1.5 * side[:, 0] - side[:, 1]).tolist()

    support_tasks = [task(support_size), task(support_size - 4)]
    query_tasks = [task(6), task(6)]

    def collate(tasks):
        return collate_tasks(encoder, [t[0] for t in tasks], [t[2] for t in tasks], kind="regression",
                             side=[t[1] for t in tasks])

    return collate(support_tasks), collate(query_tasks)


def test_every_registered_learner_is_checked() -> None:
    assert set(SETTINGS) == set(LEARNERS)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_side_features_reach_the_prediction_and_the_meta_gradient(name: str, encoder) -> None:
    torch.manual_seed(0)
    learner = create_learner(name, encoder, adapter=ADAPTER, head=HEAD, **SETTINGS[name])
    support, query = side_batches(encoder)
    learner.meta_gradient(support, query)
    gradients = {key: p.grad for key, p in learner.named_parameters() if p.grad is not None}
    assert gradients and all(torch.isfinite(g).all() for g in gradients.values())
    if "init.head_weight" in gradients:  # the side columns of the head are learned, not left at zero
        assert gradients["init.head_weight"][:, -2:].abs().sum() > 0
    prediction = learner.predict(learner.adapt(support), query).outputs
    assert prediction.shape == (2, 6) and torch.isfinite(prediction).all()
    # Same text everywhere: only the side features can make the query predictions differ.
    assert prediction.std(dim=1).min() > 1e-4, prediction


@pytest.mark.parametrize("name", ["bayes", "fomaml", "protonet"])
def test_save_then_load_keeps_the_side_head(name: str, encoder, tmp_path) -> None:
    torch.manual_seed(0)
    learner = create_learner(name, encoder, adapter=ADAPTER, head=HEAD, **SETTINGS[name])
    support, query = side_batches(encoder)
    learner.meta_gradient(support, query)
    with torch.no_grad():
        for parameter in learner.parameters():
            if parameter.grad is not None:
                parameter -= 0.1 * parameter.grad
    save_learner(learner, tmp_path / "learner")
    loaded = load_learner(tmp_path / "learner", encoder=encoder)
    assert loaded.config.head.side_features == 2
    torch.testing.assert_close(loaded.predict(loaded.adapt(support), query).outputs,
                               learner.predict(learner.adapt(support), query).outputs)


def test_the_closed_form_posterior_fits_a_signal_carried_by_the_side_features_alone(encoder) -> None:
    learner = create_learner("bayes", encoder, adapter=ADAPTER, head=HEAD, initial_noise_std=0.1)
    support, query = side_batches(encoder, seed=1, support_size=30)
    error = (learner.predict(learner.adapt(support), query).outputs - query.targets).abs().mean()
    spread = (query.targets - query.targets.mean(1, keepdim=True)).abs().mean()
    assert error < 0.25 * spread, (float(error), float(spread))


def test_a_head_without_side_features_is_unchanged(encoder) -> None:
    plain = create_learner("bayes", encoder, adapter=ADAPTER, head=HeadConfig(kind="regression"))
    assert plain.init["head_weight"].shape == (1, encoder.hidden_size)
    assert plain.log_prior_std.shape == (encoder.hidden_size,)
    with_side = create_learner("bayes", encoder, adapter=ADAPTER, head=HEAD)
    assert with_side.init["head_weight"].shape == (1, encoder.hidden_size + 2)


def test_a_wrong_side_width_or_a_missing_one_is_refused(encoder) -> None:
    learner = create_learner("fomaml", encoder, adapter=ADAPTER, head=HEAD)
    support, query = side_batches(encoder)
    plain = collate_tasks(encoder, [["a", "b"]], [[1.0, 2.0]], kind="regression")
    with pytest.raises(ConfigError, match="takes 2 side features per example"):
        learner.adapt(plain)
    three = collate_tasks(encoder, [["a", "b"]], [[1.0, 2.0]], kind="regression", side=[torch.zeros(2, 3)])
    with pytest.raises(ConfigError, match=r"takes 2 side features.*shape \[1, 2, 3\]"):
        learner.adapt(three)
    without = create_learner("fomaml", encoder, adapter=ADAPTER, head=HeadConfig(kind="regression"))
    with pytest.raises(ConfigError, match="the head takes none"):
        without.adapt(support)
    with pytest.raises(ConfigError, match=r"side features must be \[2, F\]"):
        collate_tasks(encoder, [["a", "b"]], [[1.0, 2.0]], kind="regression", side=[torch.zeros(3, 2)])
    with pytest.raises(ConfigError, match="HeadConfig.side_features"):
        HeadConfig(side_features=-1)


def test_batches_keep_side_features_through_select_concat_and_the_prefix_cache(encoder) -> None:
    support, query = side_batches(encoder)
    assert support.side.shape == (2, 12, 2)
    # Padding repeats the task's first example, side features included.
    assert torch.equal(support.side[1, 8:], support.side[1, :1].expand(4, 2))
    assert torch.equal(support.select([1]).side, support.side[1:])
    joined = concat_examples(support, query)
    assert torch.equal(joined.side, torch.cat([support.side, query.side], 1))
    with pytest.raises(ConfigError, match="side features to one without"):
        concat_examples(support, collate_tasks(encoder, [["a"], ["b"]], [[1.0], [2.0]], kind="regression"))
    learner = create_learner("bayes", encoder, adapter=ADAPTER, head=HEAD)
    texts = ["first item", "second item", "third item"]
    table = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    cache = PrefixCache(learner.model, lambda rows: [texts[r] for r in rows])
    cached = cache.batch([[2, 0], [1]], [[1.0, 2.0], [3.0]], kind="regression", side=table)
    assert torch.equal(cached.side, torch.tensor([[[4.0, 5.0], [0.0, 1.0]], [[2.0, 3.0], [2.0, 3.0]]]))
    plain = collate_tasks(encoder, [["third item", "first item"], ["second item"]], [[1.0, 2.0], [3.0]],
                          kind="regression", side=[table[[2, 0]], table[[1]]])
    state = learner.adapt(plain)
    torch.testing.assert_close(learner.predict(state, cached).outputs, learner.predict(state, plain).outputs,
                               atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("name", ["bayes", "protonet"])
def test_shared_features_equal_the_per_task_features_they_replace_at_inference(name: str, encoder) -> None:
    """bayes and protonet embed each distinct input once at inference (users share films); the
    features must be the ones every task would have computed on its own."""
    from personalize.engine.inner_loop import expand_to_tasks

    torch.manual_seed(0)
    learner = create_learner(name, encoder, adapter=ADAPTER, head=HEAD)
    with torch.no_grad():
        for value in learner.init.values():
            value.add_(0.1 * torch.randn_like(value))  # adapters that change the features
    texts = [["a film", "b film", "a film"], ["b film", "c film"], ["a film"]]
    batch = collate_tasks(encoder, texts, [[1.0] * len(t) for t in texts], kind="regression",
                          side=[torch.randn(len(t), 2) for t in texts])
    per_task = learner.task_features(expand_to_tasks(learner.init_params(), 3), batch)
    torch.testing.assert_close(learner.shared_features(batch), per_task, atol=1e-5, rtol=1e-5)
