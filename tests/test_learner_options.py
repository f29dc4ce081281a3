"""Options the README advertises, each exercised with an assertion that fails if the option is ignored.

ProtoNet's ``objective="pairwise"`` and ``distance="euclidean"``, ``HeadConfig(normalize=True)`` and
adapter ``dropout > 0``; tiny encoder and the synthetic suite.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from personalize.encoder import tiny_encoder
from personalize.engine.batch import collate_tasks
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.episode_batches import episode_batches
from personalize.engine.inner_loop import expand_to_tasks
from personalize.learners import create_learner
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.tasks.synthetic import synthetic_suite

ADAPTER = AdapterConfig(rank=4, target_modules=("query", "value"))
TEXTS = ["a good film", "a bad film", "good enough", "truly bad"]


def batch(encoder, texts=TEXTS, labels=(1, 0, 1, 0)):
    return collate_tasks(encoder, [list(texts)], [list(labels)], kind="classification")


def with_nonzero_adapters(learner):
    """LoRA B starts at zero, which would make every adapter option a no-op; give it small values."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, value in learner.named_parameters():
            if name.endswith("_B"):
                value.copy_(0.1 * torch.randn(value.shape, generator=generator))
    return learner


def test_pairwise_objective_trains_and_lowers_its_validation_loss() -> None:
    encoder = tiny_encoder(seed=0)
    suite = synthetic_suite(num_tasks=24, examples_per_class=12, seed=0)
    torch.manual_seed(0)
    learner = create_learner("protonet", encoder, adapter=ADAPTER, objective="pairwise")
    support, query = episode_batches(encoder, suite.episodes("train", shots=4, n=4, seed=1))
    pairwise, _ = learner.meta_loss(support, query)
    learner.config = dataclasses.replace(learner.config, objective="prototypical")
    prototypical, _ = learner.meta_loss(support, query)
    assert not torch.isclose(pairwise, prototypical)  # the option selects another loss
    learner.config = dataclasses.replace(learner.config, objective="pairwise")
    learner.zero_grad()
    learner.meta_gradient(support, query)
    assert learner.pair_bias.grad is not None and learner.pair_bias.grad.abs() > 0  # used by pairwise only
    fit = MetaFitConfig(steps=30, meta_batch_size=4, shots=(4,), outer_lr=1e-2, warmup_steps=2, val_every=15,
                        val_episodes=8, progress=False, seed=0)
    trained = meta_fit(learner, suite, fit)
    train_losses = [entry["train_loss"] for entry in trained.record["history"] if "train_loss" in entry]
    assert sum(train_losses[-10:]) / 10 < sum(train_losses[:10]) / 10 - 0.01, train_losses


def test_euclidean_distance_scores_by_negative_squared_distance() -> None:
    encoder = tiny_encoder(seed=0)
    cosine = create_learner("protonet", encoder, distance="cosine")
    euclidean = create_learner("protonet", encoder, distance="euclidean")
    queries = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    keys = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])
    scale = euclidean.log_scale.exp()
    expected = -scale * torch.tensor([[[1.0, 2.0], [1.0, 10.0]]])
    torch.testing.assert_close(euclidean.similarity(queries, keys), expected)
    # Cosine ignores length: both queries point the same way, so they score alike; euclidean does not.
    cos = cosine.similarity(queries, keys)
    torch.testing.assert_close(cos[0, 0], cos[0, 1])
    state = euclidean.adapt(batch(encoder))
    assert euclidean.predict(state, batch(encoder)).outputs.shape == (1, 4, 2)


def test_head_normalize_gives_unit_length_features_and_other_predictions() -> None:
    encoder = tiny_encoder(seed=0)
    torch.manual_seed(0)
    plain = with_nonzero_adapters(create_learner("fomaml", encoder, adapter=ADAPTER, inner_steps=1))
    torch.manual_seed(0)
    normalized = with_nonzero_adapters(create_learner("fomaml", encoder, adapter=ADAPTER, inner_steps=1,
                                                      head=HeadConfig(normalize=True)))
    support = batch(encoder)
    params = expand_to_tasks(normalized.init_params(), 1)
    features = normalized.task_features(params, support)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(1, 4))
    raw = plain.task_features(expand_to_tasks(plain.init_params(), 1), support)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(1, 4), atol=1e-2)
    torch.testing.assert_close(features, F.normalize(raw, dim=-1))
    assert not torch.allclose(plain.predict(plain.adapt(support), support).outputs,
                              normalized.predict(normalized.adapt(support), support).outputs)


def test_adapter_dropout_changes_outputs_in_training_mode_only() -> None:
    encoder = tiny_encoder(seed=0)
    support = batch(encoder)

    def features(dropout: float, training: bool, seed: int) -> torch.Tensor:
        torch.manual_seed(0)
        learner = with_nonzero_adapters(create_learner(
            "protonet", encoder, adapter=AdapterConfig(rank=4, target_modules=("query", "value"), dropout=dropout)))
        torch.manual_seed(seed)
        with torch.no_grad():
            return learner.task_features(expand_to_tasks(learner.init_params(), 1), support, training=training)

    eval_mode = features(0.5, training=False, seed=1)
    assert torch.equal(eval_mode, features(0.5, training=False, seed=2))      # no dropout when evaluating
    assert torch.equal(eval_mode, features(0.0, training=False, seed=1))      # and eval equals no dropout at all
    first, second = features(0.5, training=True, seed=1), features(0.5, training=True, seed=2)
    assert not torch.allclose(first, eval_mode, atol=1e-4)                    # dropout ran in training
    assert not torch.allclose(first, second, atol=1e-4)                       # with fresh masks per seed
    assert torch.equal(first, features(0.5, training=True, seed=1))           # seeded: reproducible
    assert torch.equal(features(0.0, training=True, seed=1), eval_mode)       # dropout 0: training = eval
