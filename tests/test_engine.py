"""The batched adaptation engine against independent references.

- the frozen prefix + adapted layers reproduce the HF model (zero LoRA) and PEFT's LoRA (nonzero);
- de-duplicating shared inputs in the frozen prefix changes nothing;
- adapting T tasks in one batch equals adapting each alone, for every learner (unbalanced tasks);
- MAML's second-order meta-gradient matches finite differences (first-order MAML does not);
- Reptile's meta-gradient is ``init - mean(adapted)`` with an inner loop written out by hand here.

and that the benchmark script (scripts/bench_engine.py) runs end to end.

Everything runs on the tiny random encoder with fixed seeds, in seconds on 2 CPU cores.
"""

from __future__ import annotations

import copy
import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from personalize.encoder import mean_pool, tiny_encoder
from personalize.engine.batch import TaskBatch, collate_tasks, concat_examples
from personalize.engine.batched_model import BatchedLoRAModel
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.episode_batches import episode_batches
from personalize.engine.inner_loop import expand_to_tasks, task_losses
from personalize.errors import ConfigError
from personalize.learners import LEARNERS, create_learner
from personalize.tasks.synthetic import synthetic_suite

TEXTS = ["a", "hello world", "a somewhat longer sentence here", "mid length", "hello world", "z"]
WORDS = ["good", "bad", "the", "item", "was", "great", "awful", "fine", "size", "color", "it", "so"]


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


def random_lora(model: BatchedLoRAModel, seed: int, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """Every adapter and head entry random (B nonzero), one copy (no task dimension)."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator) * scale
            for name, value in model.init_parameters(seed).items()}


def features_of(model: BatchedLoRAModel, params: dict[str, torch.Tensor], texts: list[str]) -> torch.Tensor:
    """Our pooled features [N, H] for one task holding ``texts``."""
    tokens = model.encoder.tokenize(texts)
    ids, mask = tokens["input_ids"][None], tokens["attention_mask"][None]
    with torch.no_grad():
        return model.features(expand_to_tasks(params, 1), model.frozen_prefix(ids, mask), mask)[0]


def hf_pooled(bert: torch.nn.Module, encoder, texts: list[str]) -> torch.Tensor:
    tokens = encoder.tokenize(texts)
    with torch.no_grad():
        return mean_pool(bert(**tokens).last_hidden_state, tokens["attention_mask"])


# ---------------------------------------------------------------------------------- 1. HF reference


@pytest.mark.parametrize("layers", [None, (1,)])
def test_zero_lora_features_equal_hf_model(encoder, layers):
    model = BatchedLoRAModel(encoder, AdapterConfig(rank=4, layers=layers), HeadConfig())
    params = model.init_parameters(seed=1)
    assert all(not value.any() for name, value in params.items() if name.endswith("_B"))
    tokens = encoder.tokenize(TEXTS)
    assert (tokens["attention_mask"] == 0).any(), "the texts must need padding"
    ours = features_of(model, params, TEXTS)
    reference = hf_pooled(encoder.model, encoder, TEXTS)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    # a sentence pools to the same vector alone (no padding) as in the padded batch
    torch.testing.assert_close(features_of(model, params, TEXTS[:1]), ours[:1], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------- 2. PEFT reference


@pytest.mark.parametrize(("targets", "layers"), [
    (("query", "value"), None),
    (("query", "key", "value", "attention_output", "intermediate", "output"), None),
    (("value", "intermediate", "output"), (1,)),
])
def test_lora_features_equal_peft(encoder, targets, layers):
    peft = pytest.importorskip("peft")
    adapter = AdapterConfig(rank=3, alpha=5.0, target_modules=targets, layers=layers)
    model = BatchedLoRAModel(encoder, adapter, HeadConfig())
    params = random_lora(model, seed=2)

    lora_config = peft.LoraConfig(r=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=0.0,
                                  target_modules=adapter.module_names(model.layout, encoder.num_layers))
    peft_model = peft.get_peft_model(copy.deepcopy(encoder.model), lora_config).eval()
    state = {}
    for name, value in params.items():
        if name.startswith("head_"):
            continue
        layer, rest = name.removeprefix("layer").split("_", 1)
        target, matrix = rest.rsplit("_", 1)
        state[f"base_model.model.{model.layout.module_name(int(layer), target)}.lora_{matrix}.weight"] = value
    result = peft.set_peft_model_state_dict(peft_model, state)
    assert not result.unexpected_keys
    assert not [key for key in result.missing_keys if "lora_" in key]
    expected_modules = len(adapter.adapted_layers(encoder.num_layers)) * len(targets)
    assert len(state) == 2 * expected_modules
    lora_modules = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
    assert len(lora_modules) == expected_modules

    ours = features_of(model, params, TEXTS)
    reference = hf_pooled(peft_model, encoder, TEXTS)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    # the adapters matter: without them the output is clearly different
    plain = hf_pooled(encoder.model, encoder, TEXTS)
    assert (ours - plain).abs().max() > 1e-2


# ---------------------------------------------------------------------------------- 3. prefix de-duplication


@pytest.mark.parametrize("layers", [None, (1,)])
def test_frozen_prefix_dedup_equals_per_task(encoder, layers):
    model = BatchedLoRAModel(encoder, AdapterConfig(rank=2, layers=layers), HeadConfig())
    tasks = [["hello world", "a", "mid length"], ["a", "hello world", "zz top"], ["hello world", "a", "mid length"]]
    tokens = encoder.tokenize([text for task in tasks for text in task])
    ids = tokens["input_ids"].view(3, 3, -1)
    mask = tokens["attention_mask"].view(3, 3, -1)
    batched = model.frozen_prefix(ids, mask)
    assert batched.shape == (3, 3, ids.shape[-1], encoder.hidden_size)
    for t in range(3):
        alone = model.frozen_prefix(ids[t : t + 1], mask[t : t + 1])
        torch.testing.assert_close(batched[t : t + 1], alone, atol=1e-6, rtol=0)
    # the same text in two tasks gets the same hidden states
    torch.testing.assert_close(batched[0, 0], batched[1, 1], atol=0, rtol=0)
    if layers == (1,):  # the prefix ran layer 0: it is not just the embeddings
        embeddings = encoder.model.embeddings(input_ids=ids[0], token_type_ids=torch.zeros_like(ids[0]))
        assert (batched[0] - embeddings).abs().max() > 1e-2


# ---------------------------------------------------------------------------------- 4. batched == sequential

LEARNER_FIELDS = {
    "maml": {"inner_steps": 3, "inner_lr": 0.3},
    "fomaml": {"inner_steps": 3, "inner_lr": 0.3},
    "meta-sgd": {"inner_steps": 3, "inner_lr": 0.3},
    "reptile": {"inner_steps": 3, "inner_lr": 0.3},
    "protonet": {},
    "bayes": {},
    "pooled": {"inner_steps": 3, "inner_lr": 0.3},
}


def random_tasks(rng: random.Random, counts: list[int], kind: str) -> tuple[list[list[str]], list[list[float]]]:
    """Tasks of the given sizes, texts of varied lengths (some shared across tasks), both classes in each."""
    texts, targets = [], []
    for count in counts:
        task_texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(count)]
        if count >= 3:
            task_texts[-1] = "the item was good"  # shared by several tasks: exercises the prefix dedup
        if kind == "classification":
            labels = [index % 2 for index in range(count)]
            rng.shuffle(labels)
        else:
            labels = [round(rng.uniform(1, 5), 2) for _ in range(count)]
        texts.append(task_texts)
        targets.append(labels)
    return texts, targets


def meta_trained(name: str, kind: str) -> torch.nn.Module:
    """A learner after a few AdamW meta-steps, so that its meta-parameters are not at their trivial init."""
    torch.manual_seed(0)
    encoder = tiny_encoder(seed=0)
    learner = create_learner(name, encoder, adapter=AdapterConfig(rank=2), head=HeadConfig(kind=kind),
                             **LEARNER_FIELDS[name])
    before = {key: value.detach().clone() for key, value in learner.named_parameters()}
    optimizer = torch.optim.AdamW(learner.parameters(), lr=0.05)
    if kind == "classification":
        suite = synthetic_suite(num_tasks=12, examples_per_class=6, seed=0, query_per_class=3)
        episodes = suite.episodes("train", shots=2, n=8, seed=0)
        meta_batches = [episode_batches(encoder, episodes[start : start + 4]) for start in (0, 4)]
    else:
        rng = random.Random(1)
        meta_batches = [(collate_tasks(encoder, *random_tasks(rng, [3, 4, 3], kind), kind=kind),
                         collate_tasks(encoder, *random_tasks(rng, [4, 2, 3], kind), kind=kind)) for _ in range(2)]
    for support, query in meta_batches * 2:
        optimizer.zero_grad()
        learner.meta_gradient(support, query)
        optimizer.step()
    moved = [key for key, value in learner.named_parameters() if not torch.equal(value, before[key])]
    assert moved, f"{name}: meta-training changed nothing"
    if "init.layer0_query_B" in before:
        assert learner.init["layer0_query_B"].abs().max() > 0
    return learner


def assert_predictions_close(first, second, atol: float = 1e-5) -> None:
    torch.testing.assert_close(first.outputs, second.outputs, atol=atol, rtol=1e-4)
    assert (first.variance is None) == (second.variance is None)
    if first.variance is not None:
        torch.testing.assert_close(first.variance, second.variance, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("kind", ["classification", "regression"])
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_batched_adaptation_equals_sequential(name, kind):
    learner = meta_trained(name, kind)
    encoder = learner.encoder
    rng = random.Random(7)
    support_counts = [2, 5, 3, 7, 4, 2]  # unbalanced: most tasks carry padding examples
    support_texts, support_targets = random_tasks(rng, support_counts, kind)
    query_texts, query_targets = random_tasks(rng, [3, 2, 4, 3, 5, 2], kind)
    support = collate_tasks(encoder, support_texts, support_targets, kind=kind)
    query = collate_tasks(encoder, query_texts, query_targets, kind=kind)
    assert not support.example_mask.all()

    state = learner.adapt(support)
    prediction = learner.predict(state, query)
    assert prediction.outputs.shape[:2] == query.targets.shape
    assert torch.isfinite(prediction.outputs).all()
    per_task_outputs = []
    for t in range(support.num_tasks):
        # the same tensors, one task at a time
        alone = learner.adapt(support.select([t]))
        assert alone.keys() == state.keys()
        for key, value in alone.items():
            # float32 rounding only: a task alone is trimmed to its own length, so its matrix products
            # have other shapes than in the batch (engine/packing.py); the tolerance follows the tensor's scale
            scale = max(1.0, float(state[key][t].double().abs().max()))
            torch.testing.assert_close(value[0], state[key][t], atol=1e-5 * scale, rtol=1e-4,
                                       msg=f"{name} {key} task {t}")
        alone_prediction = learner.predict(alone, query.select([t]))
        batched_prediction = learner.predict(state, query)
        assert_predictions_close(alone_prediction, type(prediction)(
            batched_prediction.outputs[t : t + 1],
            None if batched_prediction.variance is None else batched_prediction.variance[t : t + 1]))
        # the task collated on its own: no padding examples, a different token length
        own = collate_tasks(encoder, [support_texts[t]], [support_targets[t]], kind=kind)
        assert own.input_ids.shape[1] == support_counts[t]
        own_prediction = learner.predict(learner.adapt(own), query.select([t]))
        assert_predictions_close(own_prediction, alone_prediction)
        per_task_outputs.append(own_prediction.outputs)
    # the adapted tasks differ from one another (the support sets matter)
    assert (per_task_outputs[0] - prediction.outputs[1:2]).abs().max() > 1e-4


# ---------------------------------------------------------------------------------- 5. MAML vs finite differences


def float64_maml(first_order: bool, inner_steps: int):
    encoder = tiny_encoder(seed=3, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16)
    encoder.model.double()
    learner = create_learner("fomaml" if first_order else "maml", encoder,
                             adapter=AdapterConfig(rank=2, alpha=4.0, target_modules=("query", "value", "output")),
                             head=HeadConfig(num_classes=3), inner_steps=inner_steps, inner_lr=0.5)
    learner.double()
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for value in learner.init.values():
            value.copy_(torch.randn(value.shape, generator=generator, dtype=torch.float64) * 0.5)
    return learner


def maml_batches(encoder) -> tuple[TaskBatch, TaskBatch]:
    support = collate_tasks(encoder, [["good one", "bad", "so so"], ["awful item", "nice"]],
                            [[0, 1, 2], [1, 0]], kind="classification")
    query = collate_tasks(encoder, [["good", "the bad one"], ["nice item", "awful", "meh it was"]],
                          [[0, 1], [0, 1, 2]], kind="classification")
    return support, query


PROBES = [("layer0_query_A", (1, 3)), ("layer0_value_B", (5, 0)), ("layer0_output_B", (2, 1)),
          ("head_weight", (2, 4)), ("head_bias", (1,))]


def gradient_and_finite_difference(learner, support, query, eps: float = 1e-5):
    learner.zero_grad()
    loss, _ = learner.meta_loss(support, query)
    assert loss.dtype == torch.float64
    loss.backward()
    analytic, numeric = [], []
    for name, index in PROBES:
        parameter = learner.init[name]
        analytic.append(parameter.grad[index].item())
        original = parameter.data[index].item()
        values = []
        for shift in (eps, -eps):
            parameter.data[index] = original + shift
            values.append(learner.meta_loss(support, query)[0].item())
        parameter.data[index] = original
        numeric.append((values[0] - values[1]) / (2 * eps))
    return np.array(analytic), np.array(numeric)


def test_maml_second_order_gradient_matches_finite_differences():
    maml = float64_maml(first_order=False, inner_steps=2)
    support, query = maml_batches(maml.encoder)
    analytic, numeric = gradient_and_finite_difference(maml, support, query)
    assert np.abs(numeric).min() > 1e-5, f"probe entries with no effect on the meta-loss: {numeric}"
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-8)

    # first-order MAML drops the second-order terms: clearly off the true gradient on the same entries
    fomaml = float64_maml(first_order=True, inner_steps=2)
    first_order, numeric_fo = gradient_and_finite_difference(fomaml, support, query)
    # Same function, same meta-loss; the two runs use different attention kernels, whose float64 rounding
    # the finite difference divides by eps (about 1e-11 here), far below the first-order gap checked next.
    np.testing.assert_allclose(numeric_fo, numeric, rtol=1e-6)
    relative = np.abs(first_order - numeric) / np.abs(numeric)
    assert relative.max() > 1e-2, f"first-order gradient indistinguishable from the true one: {relative}"
    assert (relative > 1e-3).sum() >= 3, relative


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_without_inner_steps_is_the_query_gradient(first_order):
    learner = float64_maml(first_order=first_order, inner_steps=0)
    support, query = maml_batches(learner.encoder)
    analytic, numeric = gradient_and_finite_difference(learner, support, query)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-8)

    # the plain query loss of the shared init, written directly on the model
    model = learner.model
    learner.zero_grad()
    params = expand_to_tasks(learner.init_params(), query.num_tasks)
    outputs = model.forward(params, model.frozen_prefix(query.input_ids, query.attention_mask), query.attention_mask)
    losses = task_losses(outputs, query.targets, query.example_mask, "classification")
    direct = torch.autograd.grad(losses.mean(), list(learner.init.values()))
    learner.zero_grad()
    learner.meta_loss(support, query)[0].backward()
    for (name, parameter), expected in zip(learner.init.items(), direct):
        torch.testing.assert_close(parameter.grad, expected, atol=1e-12, rtol=1e-9, msg=name)


# ---------------------------------------------------------------------------------- 6. Reptile


def test_reptile_meta_gradient_is_init_minus_mean_adapted(encoder):
    steps, lr = 3, 0.2
    learner = create_learner("reptile", encoder, adapter=AdapterConfig(rank=2), inner_steps=steps, inner_lr=lr)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for value in learner.init.values():
            value.add_(torch.randn(value.shape, generator=generator) * 0.2)
    support = collate_tasks(encoder, [["good", "bad item"], ["fine", "awful", "so so", "great"], ["nice"]],
                            [[1, 0], [1, 0, 0, 1], [1]], kind="classification")
    query = collate_tasks(encoder, [["bad", "great one", "the item"], ["poor"], ["ugly", "best"]],
                          [[0, 1, 1], [0], [0, 1]], kind="classification")
    tasks = concat_examples(support, query)

    # each task adapted by hand on its own real examples, with plain SGD
    model = learner.model
    adapted = []
    for t in range(tasks.num_tasks):
        real = tasks.example_mask[t]
        ids, mask, targets = tasks.input_ids[t][real][None], tasks.attention_mask[t][real][None], tasks.targets[t][real]
        params = {name: value.detach().clone()[None].requires_grad_(True) for name, value in learner.init.items()}
        prefix = model.frozen_prefix(ids, mask)
        for _ in range(steps):
            logits = model.forward(params, prefix, mask)[0]
            loss = torch.nn.functional.cross_entropy(logits, targets)
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {name: value - lr * grad for (name, value), grad in zip(params.items(), grads)}
        adapted.append({name: value.detach()[0] for name, value in params.items()})

    learner.zero_grad()
    metrics = learner.meta_gradient(support, query)
    squared = 0.0
    for name, parameter in learner.init.items():
        expected = parameter.detach() - torch.stack([task[name] for task in adapted]).mean(0)
        torch.testing.assert_close(parameter.grad, expected, atol=1e-6, rtol=1e-4, msg=name)
        squared += expected.pow(2).sum().item()
    assert squared > 0
    assert metrics["reptile_step_norm"] == pytest.approx(squared**0.5, rel=1e-4)
    # gradients accumulate over meta-batches, like loss.backward()
    first = {name: parameter.grad.clone() for name, parameter in learner.init.items()}
    learner.meta_gradient(support, query)
    for name, parameter in learner.init.items():
        torch.testing.assert_close(parameter.grad, 2 * first[name], atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------- benchmark script


def test_bench_engine_script_runs(tmp_path, monkeypatch):
    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_engine.py"
    spec = importlib.util.spec_from_file_location("bench_engine", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_engine", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path / "bench.md"
    text = module.main(["--encoder", "tiny", "--device", "cpu", "--tasks", "1,3", "--steps", "1", "--examples", "2",
                        "--tokens", "6", "--repeats", "2", "--layers", "top1", "--out", str(out)])
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 3 |")]
    assert len(rows) == 2 and "all 3 tasks" in rows[1]
    assert "fomaml, 1 inner steps" in text and "layers 1 (" in text
    batch = module.random_batch(module.tiny_encoder(), 2, 3, 5, seed=0)
    assert batch.input_ids.shape == (2, 3, 5) and bool(batch.attention_mask.all())


# --- prefix cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fomaml", "protonet", "bayes"])
def test_cached_prefix_batches_give_the_same_results_as_computing_the_prefix(name):
    from personalize.engine.prefix_cache import PrefixCache, cached_episode_batches
    from personalize.tasks.synthetic import synthetic_suite

    encoder = tiny_encoder(seed=0)
    suite = synthetic_suite(num_tasks=20, examples_per_class=10, seed=0)
    learner = create_learner(name, encoder, adapter=AdapterConfig(rank=2, layers=(1,)))
    episodes = suite.episodes("train", shots=2, n=4, seed=0)
    plain = episode_batches(encoder, episodes)
    make_batches = cached_episode_batches(learner.model, suite.pool, dtype=torch.float32)
    cached = make_batches(encoder, episodes)
    distinct_rows = {int(r) for e in episodes for r in (*e.support_rows, *e.query_rows)}
    assert cached[0].prefix is not None and len(make_batches.cache) == len(distinct_rows)
    for metric, value in learner.evaluate(*plain).items():
        torch.testing.assert_close(learner.evaluate(*cached)[metric], value, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(learner.meta_loss(*cached)[0], learner.meta_loss(*plain)[0], atol=1e-5, rtol=1e-4)

    # The states belong to one adapter layout: a model adapting other layers refuses them.
    other = create_learner(name, encoder, adapter=AdapterConfig(rank=2, layers=(0, 1)))
    with pytest.raises(ConfigError, match="first adapted layer"):
        other.evaluate(*cached)
    # A cache fills each text once: asking again computes nothing new.
    cache = PrefixCache(learner.model, suite.pool.texts_at)
    cache.fill(episodes[0].support_rows)
    before = dict(cache._states)
    cache.fill(episodes[0].support_rows)
    assert all(cache._states[row] is before[row] for row in before)


@pytest.mark.parametrize("name", ["reptile", "maml", "meta-sgd"])
def test_meta_gradient_on_cached_prefix_batches_equals_the_plain_one(name):
    # Reptile joins support and query into one batch; the join must carry the cached states along.
    from personalize.engine.prefix_cache import cached_episode_batches
    from personalize.tasks.synthetic import synthetic_suite

    suite = synthetic_suite(num_tasks=20, examples_per_class=10, seed=0)
    learner = create_learner(name, tiny_encoder(seed=0), adapter=AdapterConfig(rank=2, layers=(1,)), inner_steps=2)
    episodes = suite.episodes("train", shots=2, n=3, seed=0)
    cached = cached_episode_batches(learner.model, suite.pool, dtype=torch.float32)(learner.encoder, episodes)
    assert cached[0].prefix is not None

    def outer_gradient(batches):
        learner.zero_grad()
        learner.meta_gradient(*batches)
        return {key: value.grad.clone() for key, value in learner.named_parameters() if value.grad is not None}

    plain = outer_gradient(episode_batches(learner.encoder, episodes))
    from_cache = outer_gradient(cached)
    assert plain.keys() == from_cache.keys() and plain
    for key, value in plain.items():
        torch.testing.assert_close(from_cache[key], value, atol=1e-5, rtol=1e-4, msg=key)
