"""The batch job over a rating log: bank states equal the library's own adaptation, top-N equals
``UserModel.recommend``, reruns resume and re-adapt only changed users, bad input is refused or skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import personalize as pz
from personalize.bank import StateBank
from personalize.data.synthetic import synthetic_ratings, synthetic_recommender
from personalize.errors import BankError, ConfigError, SchemaError
from personalize.jobs.users import SKIP_DUPLICATE, SKIP_INVALID, SKIP_NO_ITEMS, adapt_users


@pytest.fixture(scope="module")
def recommender():
    return pz.load("movielens")


@pytest.fixture(scope="module")
def log(recommender):
    return synthetic_ratings(recommender, users=range(300), ratings_per_user=15, seed=3)


def write(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
    return path


def test_bank_states_and_top_n_equal_the_library_adaptation(recommender, log, tmp_path):
    source = write(log, tmp_path / "log.parquet")
    summary = adapt_users(source, recommender, tmp_path / "bank", top=10, batch_users=64, progress=False)
    assert summary.adapted == 300 and summary.parts == 5 and not summary.skipped
    bank = StateBank(tmp_path / "bank", model=recommender)
    top = pl.read_parquet(tmp_path / "bank" / "top" / "*.parquet")
    assert top.height == 3000 and top.columns == ["user_id", "rank", "item_id", "score"]
    for user in (0, 17, 299):
        history = log.filter(pl.col("user_id") == user).select("item_id", "rating")
        expected = recommender.adapt(history)
        stored = bank.get(user)
        assert torch.allclose(stored.posterior.mean, expected.posterior.mean, atol=1e-5)
        assert torch.allclose(stored.posterior.covariance, expected.posterior.covariance, atol=1e-6)
        items = history["item_id"].to_list()[:3]
        np.testing.assert_allclose(stored.predict(items), expected.predict(items), atol=1e-5)
        wanted = expected.recommend(n=10)
        got = top.filter(pl.col("user_id") == user).sort("rank")
        np.testing.assert_allclose(got["score"].to_numpy(), wanted["score"].to_numpy(), atol=1e-4)
        assert got["item_id"].to_list() == wanted["item_id"].to_list()
    assert bank.verify().ok


def test_a_rerun_adapts_nothing_and_a_changed_user_is_re_adapted_alone(recommender, log, tmp_path):
    source = write(log, tmp_path / "log.csv")
    adapt_users(source, recommender, tmp_path / "bank", top=4, batch_users=100, progress=False)
    again = adapt_users(source, recommender, tmp_path / "bank", top=4, batch_users=100, progress=False)
    assert (again.adapted, again.unchanged, again.parts) == (0, 300, 0)
    changed = log.with_columns(rating=pl.when((pl.col("user_id") == 5) & (pl.col("item_id") == log["item_id"][
        log["user_id"].search_sorted(5)])).then(pl.lit(1.0)).otherwise(pl.col("rating")))
    write(changed, source)
    third = adapt_users(source, recommender, tmp_path / "bank", top=4, batch_users=100, progress=False)
    assert (third.adapted, third.unchanged) == (1, 299)
    top = pl.read_parquet(tmp_path / "bank" / "top" / "*.parquet")
    assert top.height == 1200 and top.filter(pl.col("user_id") == 5).height == 4  # the old rows of user 5 went
    bank = StateBank(tmp_path / "bank", model=recommender)
    assert len(bank) == 300 and bank.index(latest=False).height == 301
    expected = recommender.adapt(changed.filter(pl.col("user_id") == 5).select("item_id", "rating"))
    assert torch.allclose(bank.get(5).posterior.mean, expected.posterior.mean, atol=1e-5)
    assert bank.verify().ok


def test_bad_users_are_skipped_with_their_reason_and_the_rest_adapted(recommender, tmp_path):
    frame = pl.DataFrame({"user_id": [1, 1, 2, 2, 3, 4, 4, 5],
                          "item_id": [10, 11, 10, 10, 999_999, 10, 12, 10],
                          "rating": [4.0, 5.0, 3.0, 4.0, 5.0, float("nan"), 3.0, 9.0]})
    summary = adapt_users(write(frame, tmp_path / "log.parquet"), recommender, tmp_path / "bank", progress=False)
    assert summary.adapted == 1 and summary.dropped_rows == 1
    assert summary.skipped_examples[SKIP_DUPLICATE] == [2]
    assert summary.skipped_examples[SKIP_NO_ITEMS] == [3]
    assert summary.skipped_examples[SKIP_INVALID] == [4]
    assert [users for reason, users in summary.skipped_examples.items() if "range" in reason] == [[5]]
    assert 1 in StateBank(tmp_path / "bank") and 2 not in StateBank(tmp_path / "bank")


def test_refusals_leave_the_bank_valid(recommender, log, tmp_path):
    source = write(log, tmp_path / "log.parquet")
    adapt_users(source, recommender, tmp_path / "bank", batch_users=100, progress=False)
    with pytest.raises(SchemaError, match="not together"):
        shuffled = pl.concat([log.filter(pl.col("user_id") < 150), log.filter(pl.col("user_id") == 3)])
        adapt_users(write(shuffled, tmp_path / "shuffled.parquet"), recommender, tmp_path / "bank", progress=False)
    with pytest.raises(SchemaError, match="lacks column"):
        adapt_users(write(log.rename({"rating": "stars"}), tmp_path / "stars.parquet"), recommender,
                    tmp_path / "bank", progress=False)
    with pytest.raises(BankError, match="another model"):
        other = synthetic_recommender(recommender, items=1700)
        adapt_users(source, other, tmp_path / "bank", progress=False)
    with pytest.raises(ConfigError, match="top"):
        adapt_users(source, recommender, tmp_path / "bank", top=5, progress=False)
    (tmp_path / "user-files").mkdir()
    (tmp_path / "user-files" / "notes.txt").write_text("mine")
    with pytest.raises(BankError, match="not a state bank"):
        adapt_users(source, recommender, tmp_path / "user-files", progress=False)
    assert (tmp_path / "user-files" / "notes.txt").read_text() == "mine"
    assert StateBank(tmp_path / "bank").verify().ok and len(StateBank(tmp_path / "bank")) == 300


def test_a_full_disk_keeps_the_committed_parts(recommender, log, tmp_path, monkeypatch):
    import personalize.bank.store as store

    calls = {"n": 0}
    real = store.save_file

    def full_after_two(tensors, path):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        return real(tensors, path)

    monkeypatch.setattr(store, "save_file", full_after_two)
    with pytest.raises(BankError, match="keeps its 2 committed part"):
        adapt_users(write(log, tmp_path / "log.parquet"), recommender, tmp_path / "bank", batch_users=50,
                    progress=False)
    bank = StateBank(tmp_path / "bank")
    assert bank.verify().ok and len(bank) == 100
    assert not [p for p in (tmp_path / "bank").rglob("*") if p.name.startswith(".partial")]
    monkeypatch.setattr(store, "save_file", real)
    rest = adapt_users(tmp_path / "log.parquet", recommender, tmp_path / "bank", batch_users=50, progress=False)
    assert (rest.adapted, rest.unchanged) == (200, 100)


def test_a_damaged_shard_is_found_by_verify_and_refused_on_read(recommender, log, tmp_path):
    adapt_users(write(log, tmp_path / "log.parquet"), recommender, tmp_path / "bank", batch_users=100,
                progress=False)
    shard = tmp_path / "bank" / "shards" / "part-000002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-40:-8] = bytes(32)  # the end of the last tensor: some user's ratings
    shard.write_bytes(bytes(data))
    report = StateBank(tmp_path / "bank").verify()
    assert not report.ok and "part 2" in report.problems[0]
    bank = StateBank(tmp_path / "bank", model=recommender)
    with pytest.raises(BankError, match="checksum"):
        bank.get(199)
    assert bank.get(0).posterior.mean.shape == (1, recommender.tables.features.shape[1])


@pytest.mark.slow
def test_a_job_killed_with_sigkill_finishes_on_rerun_with_every_user_once(recommender, tmp_path):
    log = synthetic_ratings(recommender, users=range(20_000), ratings_per_user=20, seed=1)
    source = write(log, tmp_path / "log.parquet")
    command = [sys.executable, "-m", "personalize.cli", "adapt-users", str(source), "--model", "movielens",
               "--out", str(tmp_path / "bank"), "--top", "5", "--batch-users", "500", "--no-progress"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    index = tmp_path / "bank" / "index"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(index.glob("part-*.parquet"))) < 3:
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    committed = len(list(index.glob("part-*.parquet")))
    assert 3 <= committed < 40, "the job was not killed in the middle"
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    bank = StateBank(tmp_path / "bank", model=recommender)
    everything = bank.index(latest=False)
    assert everything.height == everything["id"].n_unique() == 20_000
    assert bank.verify().ok
    top = pl.read_parquet(tmp_path / "bank" / "top" / "*.parquet")
    assert top.height == 100_000 and top.group_by("user_id").len()["len"].max() == 5
