"""Same seed, same results: episodes, meta-learned checkpoints and adapted predictions, bit for bit.

One workload (``WORKLOAD``, a script) samples episodes from the synthetic suite, meta-fits every
learner in ``LEARNERS`` (plus first-order MAML with adapter dropout, so that dropout's random masks are
covered) for a few steps on the tiny encoder, saves each checkpoint, adapts it to seeded meta-test
episodes and writes the query probabilities. It writes everything to a folder: ``episodes.json``,
``<learner>/`` checkpoints, ``predictions.safetensors`` and ``histories.json``.

What is asserted:

- within one process, two runs with the same seed write the same episodes, the same checkpoint
  tensors (equal sha256 of ``meta_parameters.safetensors``, and every tensor equal), the same training
  and validation losses and the same predictions; a run with another seed differs in all of them (so
  the comparison is not vacuous);
- across two fresh Python processes (``sys.executable``, one thread each, different
  ``PYTHONHASHSEED``: nothing may depend on set or dict-of-str order), the same, bit for bit; and the
  same again in the test process itself, whatever ran in it before.

Every run here uses one torch thread: float reductions may be ordered differently under another
thread count, and on 2 shared cores two threads are many times slower.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from personalize.learners import LEARNERS

WORKLOAD = textwrap.dedent('''
    """Sample, meta-fit, save and adapt with one seed; write every result under the output folder."""
    import json
    import sys
    from dataclasses import replace
    from pathlib import Path

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from personalize.checkpoint import save_learner
    from personalize.encoder import tiny_encoder
    from personalize.engine.config import AdapterConfig
    from personalize.learners import LEARNERS, create_learner
    from personalize.meta_fit import MetaFitConfig, meta_fit
    from personalize.task_model import adapt_tasks
    from personalize.tasks.synthetic import synthetic_suite

    LEARNER_SPECS = {name: {} for name in sorted(LEARNERS)}
    LEARNER_SPECS["fomaml-dropout"] = {"adapter": AdapterConfig(dropout=0.2)}


    def episode_record(episode):
        return {"task": episode.task, "classes": list(episode.classes),
                "support": episode.support_rows.tolist(), "query": episode.query_rows.tolist(),
                "support_labels": episode.support_labels.tolist(), "query_labels": episode.query_labels.tolist()}


    def run(out, seed, train=True):
        out = Path(out)
        out.mkdir(parents=True)
        suite = synthetic_suite(num_tasks=20, examples_per_class=10, seed=0)
        rng = np.random.default_rng(seed)
        episodes = {split: [episode_record(e) for e in suite.episodes(split, shots=2, n=4, seed=seed)]
                    for split in ("train", "val", "test")}
        episodes["sampled"] = [episode_record(suite.sample("train", shots=int(rng.choice([1, 2])), rng=rng))
                               for _ in range(4)]
        (out / "episodes.json").write_text(json.dumps(episodes, indent=1), encoding="utf-8")
        if not train:
            return

        encoder = tiny_encoder(seed=0)
        config = MetaFitConfig(steps=3, meta_batch_size=2, shots=(2,), outer_lr=1e-2, warmup_steps=1, val_every=3,
                               val_episodes=2, keep_best=False, progress=False, seed=seed)
        test = suite.episodes("test", shots=2, n=2, seed=seed)
        tasks = [(e.support_texts, [e.classes[label] for label in e.support_labels]) for e in test]
        predictions, histories = {}, {}
        for name, fields in LEARNER_SPECS.items():
            learner = create_learner(name.removesuffix("-dropout"), encoder, **fields)
            learner = meta_fit(learner, suite, config)
            save_learner(learner, out / name)
            histories[name] = learner.record["history"]  # every step's training and validation losses
            for index, (model, episode) in enumerate(zip(adapt_tasks(learner, tasks), test)):
                predictions[f"{name}/{index}"] = torch.from_numpy(model.predict_proba(episode.query_texts))
        save_file(predictions, str(out / "predictions.safetensors"))
        (out / "histories.json").write_text(json.dumps(histories, indent=1), encoding="utf-8")


    if __name__ == "__main__":
        torch.set_num_threads(1)
        run(sys.argv[1], int(sys.argv[2]))
''')

SEED = 7


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Run this module's torch work on one thread (restored after): on 2 shared cores, 2 threads
    spinning against other processes made these tests 10-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = tmp_path_factory.mktemp("workload") / "determinism_workload.py"
    script.write_text(WORKLOAD, encoding="utf-8")
    return script


def run_here(script: Path, out: Path, seed: int, train: bool = True) -> Path:
    runpy.run_path(str(script), run_name="determinism_workload")["run"](out, seed, train)
    return out


def learner_folders(out: Path) -> list[str]:
    return sorted(path.name for path in out.iterdir() if path.is_dir())


def differences(first: Path, second: Path) -> list[str]:
    """Everything that differs between two workload folders, one line each (empty = bit for bit the same)."""
    found = []
    for name in ("episodes.json", "histories.json"):
        if json.loads((first / name).read_text()) != json.loads((second / name).read_text()):
            found.append(name)
    if learner_folders(first) != learner_folders(second):
        found.append(f"learners {learner_folders(first)} != {learner_folders(second)}")
    for name in learner_folders(first):
        checksums = [json.loads((out / name / "learner.json").read_text())["checksums"] for out in (first, second)]
        if checksums[0] != checksums[1]:
            found.append(f"{name}: checkpoint sha256")
        tensors = [load_file(str(out / name / "meta_parameters.safetensors")) for out in (first, second)]
        found += [f"{name}: {key}" for key in sorted(tensors[0])
                  if key not in tensors[1] or tensors[0][key].dtype != tensors[1][key].dtype
                  or not torch.equal(tensors[0][key], tensors[1][key])]
    predictions = [load_file(str(out / "predictions.safetensors")) for out in (first, second)]
    if sorted(predictions[0]) != sorted(predictions[1]):
        found.append("prediction keys")
    found += [f"predictions {key}" for key in sorted(predictions[0])
              if key in predictions[1] and not torch.equal(predictions[0][key], predictions[1][key])]
    return found


def test_same_seed_same_episodes_checkpoints_and_predictions_in_one_process(workload: Path, tmp_path: Path) -> None:
    first = run_here(workload, tmp_path / "first", SEED)
    second = run_here(workload, tmp_path / "second", SEED)
    assert learner_folders(first) == sorted([*LEARNERS, "fomaml-dropout"])
    assert differences(first, second) == []
    other = run_here(workload, tmp_path / "other", SEED + 1)
    changed = differences(first, other)
    assert "episodes.json" in changed and "histories.json" in changed
    for name in learner_folders(first):  # another seed trains every learner differently
        assert f"{name}: checkpoint sha256" in changed
        assert any(line.startswith("predictions " + name + "/") for line in changed), name


def run_child(script: Path, out: Path, seed: int, hash_seed: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": hash_seed}
    return subprocess.Popen([sys.executable, str(script), str(out), str(seed)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen[str]) -> Any:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


@pytest.mark.slow  # two fresh interpreters import torch and run the workload: 15-25 s on 2 shared cores
def test_same_seed_same_results_across_two_fresh_processes(workload: Path, tmp_path: Path) -> None:
    children = [run_child(workload, tmp_path / f"child-{hash_seed}", SEED, hash_seed) for hash_seed in ("1", "2")]
    for child in children:
        finish(child)
    assert differences(tmp_path / "child-1", tmp_path / "child-2") == []
    # And this process (after whatever ran before in it: global torch and numpy random states are not read)
    # gets the very same results on the same thread count.
    here = run_here(workload, tmp_path / "here", SEED)
    assert differences(here, tmp_path / "child-1") == []
