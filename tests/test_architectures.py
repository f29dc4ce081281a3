"""The engine on every encoder architecture it supports (tiny random BERT, RoBERTa, XLM-R, MPNet, DistilBERT).

For each architecture:
- the frozen prefix + adapted layers reproduce the Hugging Face model (zero LoRA) and peft's LoRA
  on the same Linears (nonzero adapters on all six targets);
- every learner meta-trains (its meta-parameters move and the loss stays finite), adapts a batch
  of unbalanced tasks exactly as it adapts each task alone, and saves and reloads to identical
  predictions;
- a task's adapters export to a peft folder that ``PeftModel.from_pretrained`` reproduces;

and architectures the engine cannot run are refused with a message naming the ones it can.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch

from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import TINY_ARCHITECTURES, Encoder, mean_pool, require_engine_support, tiny_encoder
from personalize.encoder_sources import build_char_tokenizer
from personalize.engine.batch import collate_tasks
from personalize.engine.batched_model import BatchedLoRAModel
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.inner_loop import expand_to_tasks
from personalize.errors import ConfigError
from personalize.learners import LEARNERS, create_learner
from personalize.task_model import adapt_tasks

TEXTS = ["a", "hello world", "a somewhat longer sentence here", "mid length", "hello world", "z"]
WORDS = ["good", "bad", "the", "item", "was", "great", "awful", "fine", "size", "color", "it", "so"]
ALL_TARGETS = ("query", "key", "value", "attention_output", "intermediate", "output")
LEARNER_FIELDS: dict[str, dict] = {
    "maml": {"inner_steps": 2, "inner_lr": 0.3},
    "fomaml": {"inner_steps": 2, "inner_lr": 0.3},
    "meta-sgd": {"inner_steps": 2, "inner_lr": 0.3},
    "reptile": {"inner_steps": 2, "inner_lr": 0.3},
    "protonet": {},
    "bayes": {},
    "pooled": {"inner_steps": 2, "inner_lr": 0.3},
}


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def encoder(request) -> Encoder:
    return tiny_encoder(seed=0, architecture=request.param)


def test_every_registered_learner_is_covered() -> None:
    assert set(LEARNER_FIELDS) == set(LEARNERS)


def features_of(model: BatchedLoRAModel, params: dict[str, torch.Tensor], texts: list[str]) -> torch.Tensor:
    tokens = model.encoder.tokenize(texts)
    ids, mask = tokens["input_ids"][None], tokens["attention_mask"][None]
    with torch.no_grad():
        return model.features(expand_to_tasks(params, 1), model.frozen_prefix(ids, mask), mask)[0]


def hf_pooled(model: torch.nn.Module, encoder: Encoder, texts: list[str]) -> torch.Tensor:
    tokens = encoder.tokenize(texts)
    with torch.no_grad():
        return mean_pool(model(**tokens).last_hidden_state, tokens["attention_mask"])


@pytest.mark.parametrize("layers", [None, (1,)])
def test_zero_lora_features_equal_the_hugging_face_model(encoder, layers):
    model = BatchedLoRAModel(encoder, AdapterConfig(rank=4, layers=layers), HeadConfig())
    assert (encoder.tokenize(TEXTS)["attention_mask"] == 0).any(), "the texts must need padding"
    ours = features_of(model, model.init_parameters(seed=1), TEXTS)
    torch.testing.assert_close(ours, hf_pooled(encoder.model, encoder, TEXTS), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [None, (1,)])
def test_lora_features_equal_peft_on_every_target(encoder, layers):
    peft = pytest.importorskip("peft")
    adapter = AdapterConfig(rank=3, alpha=5.0, target_modules=ALL_TARGETS, layers=layers)
    model = BatchedLoRAModel(encoder, adapter, HeadConfig())
    generator = torch.Generator().manual_seed(2)
    params = {name: torch.randn(value.shape, generator=generator) * 0.3
              for name, value in model.init_parameters(seed=2).items()}
    names = adapter.module_names(model.layout, encoder.num_layers)
    peft_model = peft.get_peft_model(copy.deepcopy(encoder.model), peft.LoraConfig(
        r=adapter.rank, lora_alpha=adapter.alpha, lora_dropout=0.0, target_modules=names)).eval()
    state = {}
    for name, value in params.items():
        if name.startswith("layer"):
            layer, rest = name.removeprefix("layer").split("_", 1)
            target, matrix = rest.rsplit("_", 1)
            state[f"base_model.model.{model.layout.module_name(int(layer), target)}.lora_{matrix}.weight"] = value
    result = peft.set_peft_model_state_dict(peft_model, state)
    assert not result.unexpected_keys and not [key for key in result.missing_keys if "lora_" in key]
    assert len(state) == 2 * len(names)

    ours = features_of(model, params, TEXTS)
    torch.testing.assert_close(ours, hf_pooled(peft_model, encoder, TEXTS), atol=1e-5, rtol=0)
    assert (ours - hf_pooled(encoder.model, encoder, TEXTS)).abs().max() > 1e-2  # the adapters matter


def random_tasks(rng: random.Random, counts: list[int]) -> tuple[list[list[str]], list[list[int]]]:
    texts, labels = [], []
    for count in counts:
        task_texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(count)]
        task_texts[-1] = "the item was good"  # shared by several tasks: exercises the prefix dedup
        task_labels = [index % 2 for index in range(count)]
        rng.shuffle(task_labels)
        texts.append(task_texts)
        labels.append(task_labels)
    return texts, labels


def meta_trained(name: str, encoder: Encoder) -> torch.nn.Module:
    """A learner after a few AdamW meta-steps, its meta-parameters off their trivial init."""
    torch.manual_seed(0)
    learner = create_learner(name, encoder, adapter=AdapterConfig(rank=2, target_modules=("query", "value", "output")),
                             head=HeadConfig(), **LEARNER_FIELDS[name])
    before = {key: value.detach().clone() for key, value in learner.named_parameters()}
    optimizer = torch.optim.AdamW(learner.parameters(), lr=0.05)
    rng = random.Random(1)
    batches = [(collate_tasks(encoder, *random_tasks(rng, [3, 4, 3]), kind="classification"),
                collate_tasks(encoder, *random_tasks(rng, [4, 2, 3]), kind="classification")) for _ in range(2)]
    for support, query in batches * 2:
        optimizer.zero_grad()
        learner.meta_gradient(support, query)
        optimizer.step()
    moved = [key for key, value in learner.named_parameters() if not torch.equal(value, before[key])]
    assert moved, f"{name}: meta-training changed nothing"
    return learner


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learner_adapts_a_batch_as_it_adapts_each_task_alone(name, encoder, tmp_path):
    learner = meta_trained(name, encoder)
    rng = random.Random(7)
    support_texts, support_labels = random_tasks(rng, [2, 5, 3, 4])
    query_texts, query_labels = random_tasks(rng, [3, 2, 4, 3])
    support = collate_tasks(encoder, support_texts, support_labels, kind="classification")
    query = collate_tasks(encoder, query_texts, query_labels, kind="classification")
    assert not support.example_mask.all()  # unbalanced: padding examples in the batch

    batched = learner.predict(learner.adapt(support), query).outputs
    assert torch.isfinite(batched).all()
    for t in range(support.num_tasks):
        own = collate_tasks(encoder, [support_texts[t]], [support_labels[t]], kind="classification")
        alone = learner.predict(learner.adapt(own), query.select([t])).outputs
        torch.testing.assert_close(alone, batched[t : t + 1], atol=1e-5, rtol=1e-4)
    assert (batched[0] - batched[1]).abs().max() > 1e-4  # the support sets matter

    reloaded = load_learner(save_learner(learner, tmp_path / "ckpt"),
                            encoder=tiny_encoder(seed=0, architecture=encoder.model.config.model_type))
    torch.testing.assert_close(reloaded.predict(reloaded.adapt(support), query).outputs, batched, atol=1e-6, rtol=0)


def test_adapters_export_to_peft_and_reload(encoder, tmp_path):
    from peft import PeftModel

    learner = meta_trained("fomaml", encoder)
    [model] = adapt_tasks(learner, [(["good item", "awful fit", "great color"], [1, 0, 1])])
    folder = model.to_peft(tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(copy.deepcopy(encoder.model), str(folder)).eval()
    with torch.no_grad():
        weights = {key: value[None] for key, value in model.adapter_weights().items()}
        batch = collate_tasks(encoder, [TEXTS], [[0] * len(TEXTS)], kind="classification")
        ours = learner.task_features(weights, batch)
    torch.testing.assert_close(ours[0], hf_pooled(peft_model, encoder, TEXTS), atol=1e-5, rtol=0)
    assert (ours[0] - hf_pooled(encoder.model, encoder, TEXTS)).abs().max() > 1e-4


# ---------------------------------------------------------------------------------- refusals


def test_an_architecture_without_a_layout_is_refused_naming_the_supported_ones():
    from transformers import AutoConfig, AutoModel

    tokenizer = build_char_tokenizer()
    config = AutoConfig.for_model("albert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, embedding_size=16,
                                  pad_token_id=tokenizer.pad_token_id)
    albert = Encoder(AutoModel.from_config(config), tokenizer, name="tiny-albert", weights_sha256=None, device="cpu")
    assert albert.embed(["still embeds"]).shape == (1, 32)
    supported = "bert, roberta, xlm-roberta, mpnet, distilbert"
    with pytest.raises(ConfigError, match=f"tiny-albert.*'albert'.*run on {supported}"):
        require_engine_support(albert)
    with pytest.raises(ConfigError, match="do not run on 'albert' encoders"):
        create_learner("protonet", albert)


def test_a_task_model_with_a_head_is_refused_with_the_fix():
    from transformers import AutoConfig, AutoModelForSequenceClassification

    tokenizer = build_char_tokenizer()
    config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, pad_token_id=tokenizer.pad_token_id)
    classifier = AutoModelForSequenceClassification.from_config(config)
    encoder = Encoder(classifier, tokenizer, name="bert-with-a-head", weights_sha256=None, device="cpu")
    with pytest.raises(ConfigError, match="not laid out as the engine expects.*AutoModel"):
        require_engine_support(encoder)
