"""``--engine ray``: on a local Ray instance of 2 CPUs, the bank written by 2 Ray workers equals the
local engine's bank for the same input (shard and top-N bytes, index but for ``adapted_at``), for a
recommender loaded by name on the workers and for a text classifier shipped to them as an object; a
Ray run resumes a partial local run into the same bank; a worker whose model differs is refused.
Without ray installed, the jobs still import and run locally, and ``--engine ray`` names the extra.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

import personalize as pz
from personalize.bank import StateBank
from personalize.cli import main
from personalize.data.synthetic import synthetic_ratings, synthetic_recommender
from personalize.errors import BankError, ConfigError, EngineError, MissingDependencyError
from personalize.jobs.tasks import adapt_tasks_job
from personalize.jobs.users import adapt_users

BATCH_USERS = 128
USERS = 1_000
WORDS = ["good", "bad", "fine", "awful", "great", "poor", "nice", "broken", "lovely", "sad"]


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install personalize[ray])")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def recommender():
    return pz.load("movielens")


@pytest.fixture(scope="module")
def log_file(recommender, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ray-log") / "log.parquet"
    synthetic_ratings(recommender, users=range(USERS), ratings_per_user=15, seed=5).write_parquet(path)
    return path


@pytest.fixture(scope="module")
def local_bank(log_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray-local") / "bank"
    with one_torch_thread():
        summary = adapt_users(log_file, "movielens", out, top=5, batch_users=BATCH_USERS, progress=False)
    assert summary.adapted == USERS and summary.engine.name == "local"
    return out


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the local engine with one torch thread, as each Ray actor does, so that the float sums of the
    posterior solves (about 400 features wide for the shipped model) are added in the same order and
    the two banks are equal bit for bit. With more threads they agree to float rounding only."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def snapshot(bank: Path) -> dict[str, object]:
    """Everything a bank holds, but each index row's ``adapted_at`` and bank.json's creation time."""
    files = {}
    for folder in ("shards", "top"):
        files.update({f"{folder}/{file.name}": file.read_bytes() for file in sorted((bank / folder).glob("part-*"))})
    index = {file.name: pl.read_parquet(file).drop("adapted_at") for file in sorted((bank / "index").glob("part-*"))}
    document = StateBank(bank).document
    return {"files": files, "index": index, "config": {k: v for k, v in document.items() if k != "created"}}


def assert_same_bank(got: Path, expected: Path) -> None:
    mine, theirs = snapshot(got), snapshot(expected)
    assert mine["config"] == theirs["config"]
    assert list(mine["files"]) == list(theirs["files"]) and list(mine["index"]) == list(theirs["index"])
    different = [name for name in theirs["files"] if mine["files"][name] != theirs["files"][name]]
    assert not different, f"these files differ from the local engine's: {different}"
    for name, frame in theirs["index"].items():
        assert mine["index"][name].equals(frame), f"index/{name} differs from the local engine's"
    assert StateBank(got).verify().ok


@pytest.mark.slow
def test_the_ray_bank_equals_the_local_bank(ray_instance, log_file, local_bank, tmp_path):
    summary = adapt_users(log_file, "movielens", tmp_path / "bank", top=5, batch_users=BATCH_USERS, progress=False,
                          engine="ray", workers=2)
    assert (summary.adapted, summary.parts) == (USERS, -(-USERS // BATCH_USERS))
    assert (summary.engine.name, summary.engine.workers) == ("ray", 2)
    assert summary.engine.worker_peak_rss_mb > 0
    assert any("2 worker(s)" in line for line in summary.lines())
    assert_same_bank(tmp_path / "bank", local_bank)


@pytest.mark.slow
def test_a_ray_run_resumes_a_partial_local_run_into_the_same_bank(ray_instance, log_file, local_bank, tmp_path,
                                                                   monkeypatch):
    import personalize.bank.store as store

    real, calls = store.save_file, {"n": 0}

    def full_after_three(tensors, path):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return real(tensors, path)

    monkeypatch.setattr(store, "save_file", full_after_three)
    with pytest.raises(BankError, match="keeps its 3 committed part"), one_torch_thread():
        adapt_users(log_file, "movielens", tmp_path / "bank", top=5, batch_users=BATCH_USERS, progress=False)
    monkeypatch.setattr(store, "save_file", real)
    rest = adapt_users(log_file, "movielens", tmp_path / "bank", top=5, batch_users=BATCH_USERS, progress=False,
                       engine="ray", workers=2)
    assert (rest.unchanged, rest.adapted) == (3 * BATCH_USERS, USERS - 3 * BATCH_USERS)
    assert_same_bank(tmp_path / "bank", local_bank)
    again = adapt_users(log_file, "movielens", tmp_path / "bank", top=5, batch_users=BATCH_USERS, progress=False,
                        engine="ray", workers=2)
    assert (again.adapted, again.parts, again.unchanged) == (0, 0, USERS)
    assert again.engine.workers == 0  # nothing to adapt: no Ray worker was started


def task_frame(tasks: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for task in range(tasks):
        for example in range(6):
            rows.append({"task": f"shop-{task:03d}", "text": " ".join(rng.choice(WORDS, 3)),
                         "label": ["neg", "pos", "mixed"][example % (3 if task % 10 == 0 else 2)]})
    return pl.DataFrame(rows)


@pytest.mark.slow
def test_a_text_task_bank_from_an_in_memory_classifier_equals_the_local_one(ray_instance, tmp_path):
    from personalize.encoder import tiny_encoder
    from personalize.learners import create_learner
    from personalize.sentiment import SentimentClassifier

    encoder = tiny_encoder(seed=0)
    companion = SentimentClassifier.build(create_learner("protonet", encoder), ["good", "bad"], [1, 0])
    classifier = SentimentClassifier.build(create_learner("meta-sgd", encoder, inner_steps=1), ["good", "bad"],
                                           [1, 0], multiclass=companion)
    task_frame(40).write_parquet(tmp_path / "tasks.parquet")
    local = adapt_tasks_job(tmp_path / "tasks.parquet", classifier, tmp_path / "local", batch_tasks=8,
                            progress=False)
    remote = adapt_tasks_job(tmp_path / "tasks.parquet", classifier, tmp_path / "ray", batch_tasks=8,
                             progress=False, engine="ray", workers=2)
    assert local.adapted == remote.adapted == 40 and remote.parts == 5
    assert_same_bank(tmp_path / "ray", tmp_path / "local")
    assert StateBank(tmp_path / "ray", model=classifier).get("shop-010").learner is classifier.multiclass.learner


@pytest.mark.slow
def test_a_worker_whose_model_is_not_the_drivers_is_refused(ray_instance, recommender, tmp_path):
    from functools import partial

    from personalize.bank.codecs import RecommenderStates
    from personalize.jobs.engines import RayEngine, Recipe, Work
    from personalize.jobs.users import UserChunks
    from personalize.recommend import Columns

    other = synthetic_recommender(recommender, items=1700)
    recipe = Recipe(build=partial(UserChunks, columns=Columns(), top=None), model=other,
                    model_id=RecommenderStates(other).model_id(), source="movielens")
    work = [Work(None, np.ones(1, bool))]  # never sent: the workers are checked first
    with pytest.raises(EngineError, match=r"Ray worker\(s\) \[0\] loaded another model from movielens than the "
                                          r"driver's"):
        next(RayEngine(workers=1).adapt(UserChunks(other, Columns(), None), iter(work), recipe))
    with pytest.raises(ConfigError, match=r"workers=3 \(--workers\) but the Ray cluster has 2 CPU"):
        next(RayEngine(workers=3).adapt(UserChunks(other, Columns(), None), iter(work), recipe))


def test_bad_engine_options_are_refused_in_one_line(tmp_path, capsys):
    pl.DataFrame({"user_id": [1], "item_id": [1], "rating": [4.0]}).write_parquet(tmp_path / "log.parquet")
    with pytest.raises(ConfigError, match=r"engine must be one of 'local', 'ray' \(--engine\), got 'spark'"):
        adapt_users(tmp_path / "log.parquet", "movielens", tmp_path / "bank", engine="spark")
    with pytest.raises(ConfigError, match=r"address='auto' \(--address\) is only for engine='ray'"):
        adapt_tasks_job(tmp_path / "log.parquet", "sentiment", tmp_path / "bank", address="auto")
    command = ["adapt-users", str(tmp_path / "log.parquet"), "--out", str(tmp_path / "bank"), "--no-progress"]
    assert main([*command, "--engine", "spark"]) == 1
    assert capsys.readouterr().err == ("personalize: error: engine must be one of 'local', 'ray' (--engine), got "
                                       "'spark'\n")
    assert main([*command, "--address", "ray://head:10001"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "add --engine ray, or drop --address" in error
    assert main([*command, "--workers", "2"]) == 1
    assert "(--workers) is only for engine='ray'" in capsys.readouterr().err
    assert not (tmp_path / "bank").exists()


def test_an_address_nothing_answers_on_is_refused_at_once(tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (pip install personalize[ray])")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pl.DataFrame({"user_id": [1], "item_id": [1], "rating": [4.0]}).write_parquet(tmp_path / "log.parquet")
    assert main(["adapt-users", str(tmp_path / "log.parquet"), "--out", str(tmp_path / "bank"), "--no-progress",
                 "--engine", "ray", "--address", f"ray://127.0.0.1:{port}"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"personalize: error: nothing answers at the Ray address 'ray://127.0.0.1:{port}'")
    assert error.count("\n") == 1
    assert StateBank(tmp_path / "bank").verify().ok and len(StateBank(tmp_path / "bank")) == 0


def test_without_ray_the_jobs_run_locally_and_engine_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import polars as pl\n"
            "from personalize.jobs.users import adapt_users\n"
            "import personalize.jobs.engines, personalize.jobs.tasks, personalize.cli_jobs\n"
            f"pl.DataFrame({{'user_id': [1, 1], 'item_id': [1, 50], 'rating': [4.0, 5.0]}}).write_parquet("
            f"{str(tmp_path / 'log.parquet')!r})\n"
            f"print(adapt_users({str(tmp_path / 'log.parquet')!r}, 'movielens', {str(tmp_path / 'bank')!r}, "
            "progress=False).adapted)\n")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "1"
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"--engine ray needs the ray package.*pip install "
                                                     r"personalize\[ray\]"):
        adapt_users(tmp_path / "log.parquet", "movielens", tmp_path / "bank", engine="ray")
    assert main(["adapt-users", str(tmp_path / "log.parquet"), "--out", str(tmp_path / "bank"), "--engine", "ray"]) == 1
    assert capsys.readouterr().err == ("personalize: error: --engine ray needs the ray package, which is not "
                                       "installed; install it with: pip install personalize[ray]\n")
