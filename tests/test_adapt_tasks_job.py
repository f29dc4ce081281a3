"""Text tasks into a bank: each task's stored model predicts as the library's own adaptation does; reruns
skip unchanged tasks; a task of three classes goes to the companion; bad tasks are skipped; PEFT export;
the CLI commands print one line on bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from personalize.bank import StateBank
from personalize.cli import main
from personalize.encoder import tiny_encoder
from personalize.errors import BankError
from personalize.jobs.tasks import SKIP_ONE_CLASS, SKIP_TEXT, adapt_tasks_job
from personalize.learners import create_learner
from personalize.sentiment import SentimentClassifier

WORDS = ["good", "bad", "fine", "awful", "great", "poor", "nice", "broken", "lovely", "sad"]


@pytest.fixture(scope="module")
def classifier():
    encoder = tiny_encoder(seed=0)
    companion = SentimentClassifier.build(create_learner("protonet", encoder), ["good", "bad"], [1, 0])
    return SentimentClassifier.build(create_learner("meta-sgd", encoder, inner_steps=1), ["good", "bad"], [1, 0],
                                     multiclass=companion)


def task_frame(tasks: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for task in range(tasks):
        for example in range(6):
            rows.append({"task": f"shop-{task:03d}", "text": " ".join(rng.choice(WORDS, 3)),
                         "label": ["neg", "pos", "mixed"][example % (3 if task % 10 == 0 else 2)]})
    return pl.DataFrame(rows)


def test_stored_tasks_predict_as_the_library_adaptation(classifier, tmp_path):
    frame = task_frame(30)
    frame.write_parquet(tmp_path / "tasks.parquet")
    summary = adapt_tasks_job(tmp_path / "tasks.parquet", classifier, tmp_path / "bank", batch_tasks=8,
                              progress=False)
    assert (summary.adapted, summary.parts) == (30, 4)
    bank = StateBank(tmp_path / "bank", model=classifier)
    probe = ["good nice fine", "awful broken sad"]
    for task in ("shop-000", "shop-007", "shop-029"):
        rows = frame.filter(pl.col("task") == task)
        expected = classifier.adapt(rows["text"].to_list(), rows["label"].to_list())
        stored = bank.get(task)
        assert stored.classes == expected.classes
        assert stored.learner is expected.learner  # shop-000 has three classes: the companion's prototypes
        np.testing.assert_allclose(stored.predict_proba(probe), expected.predict_proba(probe), atol=1e-5)
    assert bank.get("shop-000").learner is classifier.multiclass.learner
    assert bank.verify().ok
    again = adapt_tasks_job(tmp_path / "tasks.parquet", classifier, tmp_path / "bank", batch_tasks=8, progress=False)
    assert (again.adapted, again.unchanged) == (0, 30)


def test_bad_tasks_are_skipped_and_an_adapter_exports_as_peft(classifier, tmp_path):
    frame = pl.concat([task_frame(3), pl.DataFrame({"task": ["one", "one", "blank", "blank"],
                                                    "text": ["good", "nice", "good", " "],
                                                    "label": ["pos", "pos", "pos", "neg"]})])
    frame.write_csv(tmp_path / "tasks.csv")
    summary = adapt_tasks_job(tmp_path / "tasks.csv", classifier, tmp_path / "bank", progress=False)
    assert summary.adapted == 3
    assert summary.skipped_examples == {SKIP_ONE_CLASS: ["one"], SKIP_TEXT: ["blank"]}
    bank = StateBank(tmp_path / "bank", model=classifier)
    folder = bank.export("shop-001", tmp_path / "peft")
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    with pytest.raises(BankError, match="holds no user 'one'"):
        bank.get("one")


def test_the_cli_runs_the_jobs_and_reads_banks(tmp_path, capsys):
    log = pl.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 50, 181], "rating": [5.0, 4.0, 2.0]})
    log.write_parquet(tmp_path / "log.parquet")
    bank = str(tmp_path / "bank")
    assert main(["adapt-users", str(tmp_path / "log.parquet"), "--out", bank, "--top", "3", "--no-progress"]) == 0
    assert "2 users adapted" in capsys.readouterr().out
    assert main(["bank", "verify", bank]) == 0
    assert "ok: every state" in capsys.readouterr().out
    assert main(["bank", "get", bank, "2", "--top", "4"]) == 0
    assert capsys.readouterr().out.count("\n") >= 6
    assert main(["bank", "get", bank, "x"]) == 1
    assert "ids are integers" in capsys.readouterr().err
    assert main(["bank", "export", bank, "1", str(tmp_path / "peft")]) == 1
    assert "no adapter weights" in capsys.readouterr().err
    assert main(["adapt-users", str(tmp_path / "missing.parquet"), "--out", bank]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["adapt-users", str(tmp_path / "log.parquet"), "--out", bank, "--batch-users", "0"])
    assert "expected an integer >= 1" in capsys.readouterr().err


def test_verify_hashes_fixed_and_ragged_tensors_in_the_order_they_were_written(tmp_path):
    """A ragged tensor whose name sorts before a fixed one ('a' < 'z') must not change what verify hashes."""
    import torch

    from personalize.bank import StateGroup

    bank = StateBank.open_for_writing(tmp_path / "bank", kind="demo", model_id="m", model_source="demo",
                                      id_dtype="String")
    group = StateGroup(fixed={"z": torch.tensor([[1.0], [2.0]])},
                       ragged={"a": [torch.tensor([3]), torch.tensor([4, 5])]})
    bank.write_part(["u", "v"], [group], input_hashes=[1, 2], counts=[1, 2])
    reopened = StateBank(tmp_path / "bank")
    assert reopened.verify().ok
    fixed, ragged, _ = reopened.read("v")
    assert fixed["z"].tolist() == [2.0] and ragged["a"].tolist() == [4, 5]
