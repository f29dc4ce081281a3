"""The contract every meta-learner must honour, run against each of them (river's ``checks`` style).

A synthetic suite with shared structure (see ``personalize.tasks.synthetic``: polarity cue words
decide the class, with a per-task coin flip of which class is which) and a tiny random encoder keep
this fast. Each learner is meta-trained once per test session and shared by the checks below.

Stated margin: on held-out synthetic tasks (4-shot, 2-way, 48 seeded episodes), adapting from the
meta-learned initialization must beat adapting from a fresh (untrained) initialization by at least
MARGIN accuracy points, with the same adaptation procedure.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import mean_pool, tiny_encoder
from personalize.engine.batch import collate_tasks
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.episode_batches import episode_batches
from personalize.errors import EncoderError
from personalize.learners import LEARNERS, MetaLearner, create_learner
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.task_model import TaskModel, adapt_tasks
from personalize.tasks.synthetic import synthetic_suite

MARGIN = 0.10
ADAPTER = AdapterConfig(rank=4, target_modules=("query", "value", "output"))
SETTINGS: dict[str, dict] = {
    "maml": {"inner_steps": 2, "inner_lr": 0.1},
    "fomaml": {"inner_steps": 3, "inner_lr": 0.1},
    "meta-sgd": {"inner_steps": 2, "inner_lr": 0.1},
    "reptile": {"inner_steps": 5, "inner_lr": 0.3},  # trained with outer_lr 3e-2, see FIT_OVERRIDES
    "protonet": {},
    "bayes": {},
    "pooled": {"inner_steps": 3, "inner_lr": 0.1},  # the non-meta baseline honours the same contract
}
FIT = MetaFitConfig(steps=120, meta_batch_size=8, shots=(4,), outer_lr=1e-2, warmup_steps=5, val_every=40,
                    val_episodes=16, progress=False, seed=0)
FIT_OVERRIDES: dict[str, dict] = {"reptile": {"outer_lr": 3e-2}}  # Reptile's pseudo-gradient is small
NAMES = sorted(LEARNERS)
# The learning checks hold for meta-learners. The pooled-transfer baseline cannot pass them here by
# design: the synthetic tasks flip which class is which, so one pooled head averages to nothing.
META_LEARNERS = sorted(name for name, cls in LEARNERS.items() if cls.family != "transfer")


def test_every_registered_learner_has_contract_settings() -> None:
    assert set(SETTINGS) == set(LEARNERS)


@pytest.fixture(scope="session")
def encoder():
    return tiny_encoder(seed=0)


@pytest.fixture(scope="session")
def suite():
    return synthetic_suite(num_tasks=40, examples_per_class=20, seed=0)


@pytest.fixture(scope="session")
def test_batches(encoder, suite):
    return episode_batches(encoder, suite.episodes("test", shots=4, n=48, seed=5))


_TRAINED: dict[str, MetaLearner] = {}


def fresh(name: str, encoder) -> MetaLearner:
    torch.manual_seed(0)
    return create_learner(name, encoder, adapter=ADAPTER, **SETTINGS[name])


def trained(name: str, encoder, suite) -> MetaLearner:
    if name not in _TRAINED:
        _TRAINED[name] = meta_fit(fresh(name, encoder), suite, dataclasses.replace(FIT, **FIT_OVERRIDES.get(name, {})))
    return _TRAINED[name]


def perturbed(name: str, encoder, suite) -> MetaLearner:
    """The trained learner, slightly perturbed: no gradient or adapter is zero merely because LoRA B or the
    head start at zero, or because a head trained to chance (the pooled baseline here) is symmetric."""
    learner = fresh(name, encoder)
    generator = torch.Generator().manual_seed(0)
    learner.load_state_dict({key: value + 1e-2 * torch.randn(value.shape, generator=generator)
                             for key, value in trained(name, encoder, suite).state_dict().items()})
    return learner


@pytest.mark.parametrize("name", META_LEARNERS)
def test_meta_fit_lowers_meta_validation_loss(name: str, encoder, suite) -> None:
    learner = trained(name, encoder, suite)
    validations = [entry["val_loss"] for entry in learner.record["history"] if "val_loss" in entry]
    assert learner.record["best_val_loss"] < validations[0] - 0.02, validations


@pytest.mark.parametrize("name", META_LEARNERS)
def test_meta_learned_init_beats_a_fresh_init_on_held_out_tasks(name: str, encoder, suite, test_batches) -> None:
    meta_learned = trained(name, encoder, suite).evaluate(*test_batches)["accuracy"].mean().item()
    untrained = fresh(name, encoder).evaluate(*test_batches)["accuracy"].mean().item()
    assert meta_learned >= untrained + MARGIN, (meta_learned, untrained)


@pytest.mark.parametrize("name", NAMES)
def test_every_meta_parameter_receives_a_meta_gradient(name: str, encoder, suite) -> None:
    learner = perturbed(name, encoder, suite)
    learner.zero_grad()
    learner.meta_gradient(*episode_batches(encoder, suite.episodes("train", shots=4, n=4, seed=1)))
    for parameter_name, parameter in learner.named_parameters():
        if parameter_name == "pair_bias":  # used by the pairwise objective only
            continue
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name", NAMES)
def test_save_then_load_gives_identical_predictions(name: str, encoder, suite, test_batches, tmp_path) -> None:
    learner = trained(name, encoder, suite)
    reloaded = load_learner(save_learner(learner, tmp_path / "ckpt"), encoder=tiny_encoder(seed=0))
    support, query = test_batches
    before = learner.predict(learner.adapt(support), query).outputs
    after = reloaded.predict(reloaded.adapt(support), query).outputs
    assert torch.equal(before, after)
    assert reloaded.record["best_step"] == learner.record["best_step"]
    with pytest.raises(EncoderError, match="trained on encoder"):
        load_learner(tmp_path / "ckpt", encoder=tiny_encoder(seed=1))


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_inference_agrees_with_float32(name: str, precision: str, encoder, suite, test_batches,
                                                     tmp_path) -> None:
    learner = trained(name, encoder, suite)
    fast = load_learner(save_learner(learner, tmp_path / "ckpt"), encoder=tiny_encoder(seed=0, precision=precision))
    support, query = test_batches
    exact = learner.predict(learner.adapt(support), query).outputs
    rounded = fast.predict(fast.adapt(support), query).outputs
    assert rounded.dtype == torch.float32 and not torch.equal(rounded, exact)  # the low precision really ran
    real = query.example_mask
    agreement = (rounded.argmax(-1) == exact.argmax(-1))[real].float().mean().item()
    assert agreement >= 0.95, agreement


@pytest.mark.parametrize("name", NAMES)
def test_int8_leaves_training_in_float32(name: str, encoder, suite, test_batches, tmp_path) -> None:
    learner = trained(name, encoder, suite)
    int8 = load_learner(save_learner(learner, tmp_path / "ckpt"), encoder=tiny_encoder(seed=0, precision="int8"))
    support, query = test_batches
    gradients = []
    for model in (learner, int8):  # the training path itself (Reptile's is not meta_loss), gradient included
        model.train()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        metrics = model.meta_gradient(support, query)
        gradients.append((metrics, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        model.zero_grad(set_to_none=True)
        model.eval()
    (exact_metrics, exact), (same_metrics, same) = gradients
    assert exact and set(same) == set(exact)
    assert same_metrics == exact_metrics
    assert all(torch.equal(same[n], exact[n]) for n in exact)


@pytest.mark.parametrize("name", NAMES)
def test_task_model_save_load_and_label_space(name: str, encoder, suite, tmp_path) -> None:
    learner = trained(name, encoder, suite)
    episode = suite.episodes("test", shots=4, n=1, seed=3)[0]
    labels = [f"class-{episode.classes[i]}" for i in episode.support_labels]
    [model] = adapt_tasks(learner, [(episode.support_texts, labels)])
    probabilities = model.predict_proba(episode.query_texts)
    assert probabilities.shape == (len(episode.query_texts), 2)
    assert abs(probabilities.sum(1) - 1).max() < 1e-5
    assert set(model.predict(episode.query_texts)) <= {"class-a", "class-b"}
    reloaded = TaskModel.load(model.save(tmp_path / "task"), encoder=tiny_encoder(seed=0))
    assert reloaded.classes == model.classes
    assert (reloaded.predict_proba(episode.query_texts) == probabilities).all()


@pytest.mark.parametrize("name", NAMES)
def test_to_peft_round_trips_through_peft_model_from_pretrained(name: str, encoder, suite, tmp_path) -> None:
    from peft import PeftModel

    learner = perturbed(name, encoder, suite)
    episode = suite.episodes("test", shots=4, n=1, seed=4)[0]
    [model] = adapt_tasks(learner, [(episode.support_texts, list(episode.support_labels))])
    folder = model.to_peft(tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(copy.deepcopy(encoder.model), str(folder)).eval()
    tokens = encoder.tokenize(episode.query_texts)
    with torch.no_grad():
        theirs = mean_pool(peft_model(**tokens).last_hidden_state, tokens["attention_mask"])
        weights = {k: v[None] for k, v in model.adapter_weights().items()}
        ours = learner.task_features(weights, collate_tasks(encoder, [episode.query_texts],
                                                            [[0] * len(episode.query_texts)], kind="classification"))
    assert not learner.config.head.normalize  # these learners pool without normalizing (see the test below)
    assert torch.allclose(ours[0], theirs, atol=1e-5)
    # The exported adapter is not a no-op: it changes the encoder's output.
    with torch.no_grad():
        plain = mean_pool(encoder.model(**tokens).last_hidden_state, tokens["attention_mask"])
    assert (plain - theirs).abs().max() > 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_regression_tasks_adapt_and_predict_finite_scores(name: str, encoder) -> None:
    torch.manual_seed(0)
    learner = create_learner(name, encoder, adapter=ADAPTER, head=HeadConfig(kind="regression"), **SETTINGS[name])
    support = collate_tasks(encoder, [["good film", "bad film", "ok film"], ["great", "awful"]],
                            [[5.0, 1.0, 3.0], [4.0, 2.0]], kind="regression")
    query = collate_tasks(encoder, [["fine film"], ["nice"]], [[4.0], [4.0]], kind="regression")
    learner.meta_gradient(support, query)
    gradients = [p.grad for p in learner.parameters() if p.grad is not None]
    assert gradients, "meta_gradient produced no gradient at all"
    assert all(torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)
    prediction = learner.predict(learner.adapt(support), query)
    assert prediction.outputs.shape == (2, 1) and torch.isfinite(prediction.outputs).all()


def test_pooled_transfer_learns_nothing_shared_when_tasks_flip_their_labels(encoder, suite) -> None:
    """Why the baseline is excluded above, asserted: its validation loss stays at chance (ln 2)."""
    learner = trained("pooled", encoder, suite)
    validations = [entry["val_loss"] for entry in learner.record["history"] if "val_loss" in entry]
    assert min(validations) > 0.65, validations


def test_resuming_from_a_checkpoint_continues_exactly(encoder, suite, tmp_path) -> None:
    config = dataclasses.replace(FIT, steps=6, val_every=3, checkpoint_dir=str(tmp_path / "run"), keep_best=False)
    straight = meta_fit(fresh("fomaml", encoder), suite, dataclasses.replace(config, checkpoint_dir=None))

    interrupted = fresh("fomaml", encoder)
    calls = {"n": 0}
    meta_gradient = interrupted.meta_gradient

    def crash_on_the_fourth_step(support, query):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return meta_gradient(support, query)

    interrupted.meta_gradient = crash_on_the_fourth_step
    with pytest.raises(KeyboardInterrupt):
        meta_fit(interrupted, suite, config)          # dies after last/ was saved at step 3
    resumed = meta_fit(fresh("fomaml", encoder), suite, config)
    assert resumed.record["steps_done"] == 6
    assert [e["step"] for e in resumed.record["history"]] == [e["step"] for e in straight.record["history"]]
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_bayes_predictive_variance_shrinks_as_the_support_grows(encoder) -> None:
    learner = create_learner("bayes", encoder, adapter=ADAPTER, head=HeadConfig(kind="regression"))
    one, three = adapt_tasks(learner, [(["a fine film"], [4.0]), (["a fine film"] * 3, [4.0] * 3)])
    mean_one, variance_one = one.predict_with_uncertainty(["a fine film", "something else"])
    mean_three, variance_three = three.predict_with_uncertainty(["a fine film", "something else"])
    assert variance_one is not None and variance_three is not None
    assert (variance_three < variance_one).all() and (variance_three > 0).all()
    # More evidence pulls the prediction at the rated text further toward its rating.
    assert abs(mean_three[0] - 4.0) < abs(mean_one[0] - 4.0)
