"""Every row of ``docs/errors.md`` is tried here: the bad input must raise the exception the row names,
with a message containing the row's text (CLI rows: exit status 1 and that one line on stderr).

The table is the source: a row without a case here fails, and so does a case without a row.
Tiny encoder, untrained learners, a small synthetic recommender: fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import sparse

import personalize as pz
from personalize import errors
from personalize.encoder import tiny_encoder
from personalize.engine.batch import collate_tasks
from personalize.engine.config import HeadConfig
from personalize.learners import create_learner
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.recommend import Columns, Recommender, RecommenderConfig
from personalize.recommend.config import EngineUsersConfig
from personalize.recommend.selection import select_recommender
from personalize.recommend.user_tasks import UserItems, predict_users, user_learner
from personalize.sentiment import SentimentClassifier
from personalize.task_model import TaskModel
from personalize.tasks.synthetic import synthetic_suite

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
TEXTS, LABELS = ["love it", "hate it", "adore it", "awful"], ["yes", "no", "yes", "no"]


def table_rows() -> list[tuple[str, str, str]]:
    """(case, exception, message) of every row of the table in docs/errors.md."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            case, _tried, error, message = (cell.strip() for cell in line.strip().strip("|").split("|"))
            rows.append((case.strip("`"), error.strip("`"), message[1:-1] if message.startswith("`") else message))
    return rows


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> SimpleNamespace:
    encoder = tiny_encoder(seed=0)
    classifier = SentimentClassifier.build(create_learner("protonet", encoder), TEXTS, [1, 0, 1, 0])
    model = classifier.adapt(TEXTS, LABELS)
    root = tmp_path_factory.mktemp("errors")
    saved = model.save(root / "saved-task")
    rng = np.random.default_rng(0)
    items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 12), "item_id": np.tile(np.arange(12), 40),
                            "rating": rng.integers(1, 6, 480)})
    rec = Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=4, steps=4, val_every=2),
                               encoder=encoder)
    saved_rec = rec.save(root / "saved-rec")
    counter = iter(range(10**6))

    def fresh(name: str = "folder") -> Path:
        return root / f"{name}-{next(counter)}"

    def copy_of(folder: Path) -> Path:
        return Path(shutil.copytree(folder, fresh(folder.name)))

    def occupied() -> Path:
        folder = fresh("mine")
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        return folder

    return SimpleNamespace(encoder=encoder, classifier=classifier, model=model, saved=saved, rec=rec,
                           saved_rec=saved_rec, fresh=fresh, copy_of=copy_of, occupied=occupied)


def edit_json(path: Path, **changes: Any) -> Path:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))
    return path.parent


def flipped(folder: Path, name: str) -> Path:
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    return folder


def with_nan(folder: Path) -> Path:
    path = folder / "task_state.safetensors"
    state = load_file(str(path))
    state["prototypes"][0, 0, 0] = float("nan")
    save_file(state, str(path))
    from personalize.files import sha256_file

    return edit_json(folder / "task.json", checksums={"task_state.safetensors": sha256_file(path)})


def with_checksum_of(folder: Path, name: str) -> Path:
    """``folder`` whose ``task.json`` also records a checksum for file ``name``."""
    checksums = json.loads((folder / "task.json").read_text())["checksums"]
    return edit_json(folder / "task.json", checksums={**checksums, name: "0" * 64})


def as_pickle(folder: Path) -> Path:
    import pickle

    edit_json(folder / "task.json", format_version=1, checksums=None)
    (folder / "task_state.safetensors").write_bytes(pickle.dumps({"not": "tensors"}))
    return folder


def not_json(folder: Path) -> Path:
    (folder / "task.json").write_text("{")
    return folder


def small_log() -> tuple[pl.DataFrame, pl.DataFrame]:
    """40 users x 20 of 30 items, and the items' texts: enough to meta-fit any recommender for a step."""
    rng = np.random.default_rng(0)
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(40), 20),
                            "item_id": np.concatenate([rng.choice(30, 20, replace=False) for _ in range(40)]),
                            "rating": rng.integers(1, 6, 800)})
    return ratings, pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})


def engine_recommender_without_its_learner(ctx: SimpleNamespace) -> None:
    config = RecommenderConfig(factors=2, learner="bayes", engine=EngineUsersConfig(steps=1, val_every=1))
    folder = Recommender.meta_fit(*small_log(), config=config, encoder=ctx.encoder).save(ctx.fresh("engine-rec"))
    shutil.rmtree(folder / "learner")
    pz.load(folder)


def learner_on_albert(ctx: SimpleNamespace) -> None:
    """A learner built on an encoder architecture the engine has no layout for."""
    from transformers import AutoConfig, AutoModel

    from personalize.encoder import Encoder

    tokenizer = ctx.encoder.tokenizer
    config = AutoConfig.for_model("albert", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, pad_token_id=tokenizer.pad_token_id)
    albert = Encoder(AutoModel.from_config(config), tokenizer, name="tiny-albert", weights_sha256=None, device="cpu")
    create_learner("fomaml", albert)


def history(items: list, ratings: list) -> pl.DataFrame:
    return pl.DataFrame({"item_id": items, "rating": ratings})


def resume_with_other_settings(ctx: SimpleNamespace) -> None:
    suite, run = synthetic_suite(num_tasks=12), str(ctx.fresh("run"))
    config = MetaFitConfig(steps=2, val_every=2, val_episodes=2, meta_batch_size=2, progress=False, checkpoint_dir=run)
    meta_fit(create_learner("protonet", ctx.encoder), suite, config)
    meta_fit(create_learner("protonet", ctx.encoder), suite, dataclasses.replace(config, steps=4, outer_lr=0.5))


def resume_after(damage: Callable[[Path], Any]) -> Callable[[SimpleNamespace], None]:
    """Meta-fit 2 steps with checkpoints, ``damage`` the ``last/trainer.json`` file, then resume."""
    def run(ctx: SimpleNamespace) -> None:
        suite, folder = synthetic_suite(num_tasks=12), str(ctx.fresh("run"))
        config = MetaFitConfig(steps=2, val_every=2, val_episodes=2, meta_batch_size=2, progress=False,
                               checkpoint_dir=folder)
        meta_fit(create_learner("protonet", ctx.encoder), suite, config)
        damage(Path(folder) / "last" / "trainer.json")
        meta_fit(create_learner("protonet", ctx.encoder), suite, dataclasses.replace(config, steps=4))
    return run


def cut_in_half(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def encoder_with_escaping_shard(ctx: SimpleNamespace) -> None:
    folder = ctx.fresh("encoder")
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "../other/model.safetensors"}}))
    pz.load_encoder(folder)


def zip_with_escaping_entry(ctx: SimpleNamespace) -> None:
    import zipfile

    from personalize.encoder_packages import extract_folder

    archive = ctx.fresh("encoder").with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("enc/config.json", "{}")
        opened.writestr("enc/../../evil.txt", "outside")
    extract_folder(archive, "enc", ctx.fresh("extracted"))


def csr(rows: int, columns: int, entries: dict[tuple[int, int], float]) -> Any:
    """A CSR ratings matrix of ``rows`` x ``columns`` storing ``entries`` (row, column) -> rating."""
    (where, values) = (list(zip(*entries)), list(entries.values()))
    return sparse.csr_matrix((values, (where[0], where[1])), shape=(rows, columns))


def hub_offline(call: Callable[[], Any]) -> Any:
    """``call()`` with Hugging Face's offline switch on."""
    with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        return call()


def user_of_another_recommender(ctx: SimpleNamespace) -> None:
    other = Recommender.meta_fit(*small_log(), config=RecommenderConfig(factors=2, steps=1), encoder=ctx.encoder)
    ctx.rec.recommend([other.adapt(history([3], [5]))])


def cli(*argv: str) -> Callable[[SimpleNamespace], list[str]]:
    def run(ctx: SimpleNamespace) -> list[str]:
        return [ctx.occupied() if arg == "{occupied}" else arg for arg in argv]
    return run


CASES: dict[str, Callable[[SimpleNamespace], Any]] = {
    # adapting a text task
    "adapt-empty": lambda c: c.classifier.adapt([], []),
    "adapt-bare-string": lambda c: c.classifier.adapt("great", ["yes"] * 5),
    "adapt-one-class": lambda c: c.classifier.adapt(["good", "fine"], ["yes", "yes"]),
    "adapt-none-text": lambda c: c.classifier.adapt(["good", None], ["yes", "no"]),
    "adapt-nan-text": lambda c: c.classifier.adapt(["good", float("nan")], ["yes", "no"]),
    "adapt-bytes-text": lambda c: c.classifier.adapt(["good", b"bad"], ["yes", "no"]),
    "adapt-blank-text": lambda c: c.classifier.adapt(["good", "   "], ["yes", "no"]),
    "adapt-length-mismatch": lambda c: c.classifier.adapt(["good", "bad"], ["yes"]),
    "adapt-float-labels": lambda c: c.classifier.adapt(["good", "bad"], [0.5, 1.5]),
    "adapt-bool-labels": lambda c: c.classifier.adapt(["good", "bad"], [True, False]),
    "adapt-class-without-example": lambda c: c.classifier.adapt(["good", "bad"], ["yes", "no"],
                                                                classes=["yes", "no", "maybe"]),
    "adapt-label-outside-classes": lambda c: c.classifier.adapt(["good", "bad", "meh"], ["yes", "no", "meh"],
                                                                classes=["yes", "no"]),
    "adapt-many-not-pairs": lambda c: c.classifier.adapt_many(["good", "bad"]),
    "adapt-many-string-labels": lambda c: c.classifier.adapt_many([(["good", "bad"], "yn")]),
    "adapt-negative-prior": lambda c: c.classifier.adapt_many([(TEXTS, LABELS)], prior_strength=-1),
    # predicting
    "predict-bare-string": lambda c: c.model.predict("great"),
    "predict-bytes": lambda c: c.model.predict_proba(b"great"),
    "predict-empty": lambda c: c.model.predict([]),
    "predict-none": lambda c: c.model.predict([None]),
    "predict-generator": lambda c: c.model.predict(text for text in ["good"]),
    # loading
    "load-no-such-folder": lambda c: pz.load(c.fresh("nothing")),
    "load-foreign-folder": lambda c: pz.load(c.occupied()),
    "load-bad-precision": lambda c: pz.load(c.saved, encoder=c.encoder, precision="fp16"),
    "load-not-json": lambda c: pz.load(not_json(c.copy_of(c.saved)), encoder=c.encoder),
    "load-other-format-version": lambda c: pz.load(edit_json(c.copy_of(c.saved) / "task.json", format_version=99),
                                                   encoder=c.encoder),
    "load-flipped-byte": lambda c: pz.load(flipped(c.copy_of(c.saved), "task_state.safetensors"), encoder=c.encoder),
    "load-nan-in-state": lambda c: pz.load(with_nan(c.copy_of(c.saved)), encoder=c.encoder),
    "load-three-classes": lambda c: pz.load(edit_json(c.copy_of(c.saved) / "task.json", classes=["a", "b", "c"]),
                                            encoder=c.encoder),
    "load-one-class": lambda c: pz.load(edit_json(c.copy_of(c.saved) / "task.json", classes=["a"]), encoder=c.encoder),
    "load-pickle": lambda c: pz.load(as_pickle(c.copy_of(c.saved)), encoder=c.encoder),
    "load-no-checksum": lambda c: pz.load(edit_json(c.copy_of(c.saved) / "task.json", checksums=None),
                                          encoder=c.encoder),
    "load-checksum-escapes": lambda c: pz.load(with_checksum_of(c.copy_of(c.saved), "../../etc/passwd"),
                                               encoder=c.encoder),
    "load-other-encoder": lambda c: pz.load(c.saved, encoder=tiny_encoder(seed=1)),
    "load-missing-tensors": lambda c: pz.load((lambda f: ((f / "task_state.safetensors").unlink(), f)[1])(
        c.copy_of(c.saved)), encoder=c.encoder),
    "load-recommender-learner-missing": engine_recommender_without_its_learner,
    "load-recommender-catalogue-mismatch": lambda c: pz.load(edit_json(
        c.copy_of(c.saved_rec) / "recommender.json",
        items={"ids": list(range(29)), "texts": ["x"] * 29, "titles": None, "popularity": [0] * 29})),
    "load-learner-unknown-name": lambda c: pz.load(edit_json(c.copy_of(c.saved) / "learner" / "learner.json",
                                                             learner="no-such"), encoder=c.encoder),
    "encoder-shard-escapes": encoder_with_escaping_shard,
    "encoder-zip-entry-escapes": zip_with_escaping_entry,
    # saving
    "save-into-other-files": lambda c: c.model.save(c.occupied()),
    "save-onto-a-file": lambda c: c.model.save((lambda p: (p.write_text("mine"), p)[1])(c.fresh("file"))),
    "save-over-a-saved-task": lambda c: c.model.save(c.copy_of(c.saved)),
    "save-overwrite-other-kind": lambda c: c.rec.save(c.copy_of(c.saved), overwrite=True),
    "save-under-a-file": lambda c: c.rec.save((lambda p: (p.write_text("x"), p / "model")[1])(c.fresh("file"))),
    "peft-into-other-files": lambda c: c.model.to_peft(c.occupied()),
    "learner-into-other-files": lambda c: pz.save_learner(c.model.learner, c.occupied()),
    # the Hugging Face conventions
    "hub-not-a-name-folder-or-id": lambda c: SentimentClassifier.from_pretrained(str(c.fresh("no") / "such" / "path")),
    "hub-offline-not-cached": lambda c: hub_offline(lambda: SentimentClassifier.from_pretrained("someone/missing")),
    "hub-folder-of-another-kind": lambda c: TaskModel.from_pretrained(
        c.classifier.save_pretrained(c.fresh("classifier")), encoder=c.encoder),
    "hub-push-bad-id": lambda c: c.model.push_to_hub("no-owner"),
    "hub-push-offline": lambda c: hub_offline(lambda: c.model.push_to_hub("someone/x")),
    # the recommender
    "rec-history-duplicate": lambda c: c.rec.adapt(history([3, 3], [5, 4])),
    "rec-attributes-without-users": lambda c: c.rec.adapt(history([3], [5]), attributes={"age": 30}),
    "rec-attribute-columns-without-users": lambda c: Recommender.meta_fit(
        pl.DataFrame({"user_id": np.repeat(np.arange(40), 12), "item_id": np.tile(np.arange(12), 40),
                      "rating": np.full(480, 4)}),
        pl.DataFrame({"item_id": range(12), "text": [f"film number {i}" for i in range(12)]}),
        config=RecommenderConfig(factors=4, steps=2, val_every=1), attribute_columns=["age"], encoder=c.encoder),
    "rec-engine-learner-without-gaussian-head": lambda c: Recommender.meta_fit(
        *small_log(), config=RecommenderConfig(factors=2, learner="fomaml"), encoder=c.encoder),
    "rec-checkpoints-without-engine": lambda c: Recommender.meta_fit(
        *small_log(), config=RecommenderConfig(factors=2, steps=1), encoder=c.encoder, checkpoint_dir=c.fresh("run")),
    "rec-engine-without-text": lambda c: RecommenderConfig(learner="bayes", use_text=False),
    "rec-selection-empty": lambda c: select_recommender(*small_log(), {}, encoder=c.encoder),
    "rec-user-tasks-empty-support": lambda c: predict_users(
        user_learner("bayes", c.encoder, UserItems([3], ["a film"], torch.zeros(1, 0), np.zeros(1), (1.0, 5.0))),
        UserItems([3], ["a film"], torch.zeros(1, 0), np.zeros(1), (1.0, 5.0)),
        [(np.array([], dtype=np.int64), np.array([]))], [np.array([0])]),
    "rec-log-duplicate": lambda c: c.rec.adapt_many(pl.DataFrame({"user_id": [1, 1], "item_id": [3, 3],
                                                                  "rating": [5, 4]})),
    "rec-nan-rating": lambda c: c.rec.adapt(history([3], [float("nan")])),
    "rec-inf-rating": lambda c: c.rec.adapt(history([3], [float("inf")])),
    "rec-string-rating": lambda c: c.rec.adapt(history([3], ["five"])),
    "rec-out-of-range": lambda c: c.rec.adapt(history([3], [50])),
    "rec-missing-column": lambda c: c.rec.adapt(pl.DataFrame({"item_id": [3], "stars": [5]})),
    "rec-null-item": lambda c: c.rec.adapt(history([3, None], [5, 4])),
    "rec-unknown-item-raise": lambda c: c.rec.adapt(history([999], [5]), unknown_items="raise"),
    "rec-unknown-mode": lambda c: c.rec.adapt(history([3], [5]), unknown_items="skip"),
    "rec-recommend-n0": lambda c: c.rec.adapt(history([3], [5])).recommend(n=0),
    "rec-suggest-n0": lambda c: c.rec.suggest_to_rate(n=0),
    "rec-suggest-criterion": lambda c: c.rec.suggest_to_rate(n=3, criterion="entropy"),
    "rec-add-existing-item": lambda c: c.rec.add_items(pl.DataFrame({"item_id": [3], "text": ["again"]})),
    "rec-add-empty-text": lambda c: c.rec.add_items(pl.DataFrame({"item_id": [500], "text": [" "]})),
    "rec-columns-empty": lambda c: Columns(user=""),
    "rec-meta-fit-empty": lambda c: Recommender.meta_fit(pl.DataFrame({"user_id": [], "item_id": [], "rating": []}),
                                                         pl.DataFrame({"item_id": [1], "text": ["a"]}),
                                                         encoder=c.encoder),
    "rec-csr-not-csr": lambda c: c.rec.adapt_many(sparse.coo_matrix(np.ones((2, 30)))),
    "rec-csr-wrong-columns": lambda c: c.rec.adapt_many(csr(2, 5, {(0, 1): 4.0})),
    "rec-csr-nan": lambda c: c.rec.adapt_many(csr(2, 30, {(0, 2): 4.0, (1, 3): float("nan")})),
    "rec-csr-explicit-zero": lambda c: c.rec.adapt_many(csr(2, 30, {(0, 2): 4.0, (1, 3): 0.0})),
    "rec-csr-duplicate-entry": lambda c: c.rec.adapt_many(
        sparse.csr_matrix((np.array([4.0, 2.0]), np.array([3, 3]), np.array([0, 2, 2])), shape=(2, 30))),
    "rec-csr-user-ids-length": lambda c: c.rec.adapt_many(csr(2, 30, {(0, 2): 4.0}), user_ids=["a", "b", "c"]),
    "rec-csr-user-ids-repeated": lambda c: c.rec.adapt_many(csr(2, 30, {(0, 2): 4.0}), user_ids=["a", "a"]),
    "rec-matrix-options-with-frame": lambda c: c.rec.adapt_many(
        pl.DataFrame({"user_id": [1], "item_id": [3], "rating": [5]}), item_ids=list(range(30))),
    "rec-adapt-csr-many-rows": lambda c: c.rec.adapt(csr(2, 30, {(0, 2): 4.0, (1, 3): 5.0})),
    "rec-meta-fit-csr-validation": lambda c: Recommender.meta_fit(
        csr(2, 30, {(0, 2): 4.0}), small_log()[1], validation=csr(2, 30, {(0, 2): 4.0}), encoder=c.encoder),
    "rec-recommend-not-users": lambda c: c.rec.recommend(pl.DataFrame({"user_id": [1], "item_id": [3],
                                                                       "rating": [5]})),
    "rec-recommend-other-recommender": user_of_another_recommender,
    "rec-similar-unknown-item": lambda c: c.rec.similar_items(999),
    # meta-training
    "fit-steps-0": lambda c: MetaFitConfig(steps=0),
    "fit-checkpoint-every-0": lambda c: MetaFitConfig(checkpoint_every=0),
    # side features beside the text
    "engine-architecture-unsupported": learner_on_albert,
    "engine-side-negative": lambda c: HeadConfig(side_features=-1),
    "engine-side-missing": lambda c: create_learner("fomaml", c.encoder, head=HeadConfig(
        kind="regression", side_features=2)).adapt(collate_tasks(c.encoder, [["a"]], [[1.0]], kind="regression")),
    "engine-side-unwanted": lambda c: create_learner("fomaml", c.encoder, head=HeadConfig(kind="regression")).adapt(
        collate_tasks(c.encoder, [["a"]], [[1.0]], kind="regression", side=[np.zeros((1, 2))])),
    "fit-resume-other-settings": resume_with_other_settings,
    "fit-resume-no-trainer-state": resume_after(Path.unlink),
    "fit-resume-truncated-trainer-state": resume_after(cut_in_half),
    "suite-name-escapes": lambda c: pz.load_suite("../secret"),
    # the command line (one line on stderr, exit status 1)
    "cli-out-holds-other-files": cli("meta-fit", "clothing-sentiment", "--out", "{occupied}"),
    "cli-unknown-suite": cli("meta-fit", "no-such-suite", "--out", "unused-out"),
    "cli-unknown-precision": cli("demo", "--precision", "fp16"),
}


def test_every_row_has_a_case_and_every_case_a_row() -> None:
    documented = [case for case, _, _ in table_rows()]
    assert len(documented) == len(set(documented)), "a case appears twice in docs/errors.md"
    assert set(documented) == set(CASES)
    assert len(documented) >= 60


@pytest.mark.parametrize(("case", "error", "message"), table_rows(), ids=[row[0] for row in table_rows()])
def test_the_documented_error_is_raised(case, error, message, ctx, capsys, tmp_path, monkeypatch) -> None:
    if case.startswith("cli-"):
        from personalize.cli import main

        monkeypatch.chdir(tmp_path)
        assert main([str(arg) for arg in CASES[case](ctx)]) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("personalize: error: "), lines
        assert message in lines[0]
        return
    with pytest.raises(getattr(errors, error)) as raised:
        CASES[case](ctx)
    assert type(raised.value).__name__ == error
    assert message in str(raised.value), str(raised.value)
