"""A meta-training run killed with SIGKILL and restarted ends with the same checkpoint as one never stopped.

Each run is its own Python process (tiny encoder, synthetic suite, ``checkpoint_every=2``). The
interrupted one is killed once its first ``last/`` checkpoint exists, partway through; restarted with
the same command it resumes from ``last/``. The final checkpoints must be bit-identical: every
tensor equal, not merely close (same machine, same thread count, the random state is restored).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

STEPS = 12
CHILD = textwrap.dedent(f"""
    import sys, time
    import torch
    from personalize.checkpoint import save_learner
    from personalize.encoder import tiny_encoder
    from personalize.engine.episode_batches import episode_batches
    from personalize.learners import create_learner
    from personalize.meta_fit import MetaFitConfig, meta_fit
    from personalize.tasks.synthetic import synthetic_suite

    torch.set_num_threads(1)
    checkpoint_dir, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])

    calls = []

    def slow_batches(encoder, episodes):  # a slower step, so that the kill lands partway through
        calls.append(len(episodes))
        time.sleep(delay)
        return episode_batches(encoder, episodes)

    config = MetaFitConfig(steps={STEPS}, meta_batch_size=2, shots=(2,), outer_lr=1e-2, warmup_steps=2, val_every=4,
                           checkpoint_every=2, val_episodes=4, progress=False, seed=0, checkpoint_dir=checkpoint_dir)
    learner = create_learner("fomaml", tiny_encoder(seed=0), inner_steps=1)
    learner = meta_fit(learner, synthetic_suite(num_tasks=20, examples_per_class=10), config, make_batches=slow_batches)
    save_learner(learner, out)
    print("training batches", sum(1 for size in calls if size == config.meta_batch_size))
""")


def run_child(script: Path, run: Path, out: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run), str(out), str(delay)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen) -> int:
    """Wait for a child; return how many training meta-batches it drew (fewer when it resumed)."""
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return int(output.split("training batches")[-1])


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "meta_parameters.safetensors"))


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_checkpoint(tmp_path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    straight = run_child(script, tmp_path / "straight-run", tmp_path / "straight", delay=0.0)

    interrupted = run_child(script, tmp_path / "run", tmp_path / "resumed", delay=0.3)
    trainer = tmp_path / "run" / "last" / "trainer.json"
    deadline = time.monotonic() + 240
    while not trainer.is_file():
        assert interrupted.poll() is None, interrupted.communicate()[0]  # died before its first checkpoint
        assert time.monotonic() < deadline, "no last/ checkpoint within 240 s"
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait(timeout=60)
    assert interrupted.returncode == -signal.SIGKILL
    killed_at = json.loads(trainer.read_text())["state"]["step"]
    assert 2 <= killed_at < STEPS  # really partway through
    assert not (tmp_path / "resumed").exists()

    resumed_steps = finished(run_child(script, tmp_path / "run", tmp_path / "resumed", delay=0.0))
    assert finished(straight) == STEPS
    assert resumed_steps == STEPS - killed_at  # it went on from last/, not from the start
    assert json.loads(trainer.read_text())["state"]["step"] == STEPS
    for final in ("straight", "straight-run/last/learner", "straight-run/best"):
        other = {"straight": "resumed", "straight-run/last/learner": "run/last/learner",
                 "straight-run/best": "run/best"}[final]
        expected, actual = tensors(tmp_path / final), tensors(tmp_path / other)
        assert set(expected) == set(actual)
        unequal = [name for name in expected if not torch.equal(expected[name], actual[name])]
        assert not unequal, (final, unequal)
    resumed_history = json.loads((tmp_path / "resumed" / "learner.json").read_text())["record"]["history"]
    straight_history = json.loads((tmp_path / "straight" / "learner.json").read_text())["record"]["history"]
    assert [entry["step"] for entry in resumed_history] == [entry["step"] for entry in straight_history]


def test_the_cli_writes_last_every_checkpoint_every_steps(tmp_path, monkeypatch) -> None:
    """``personalize meta-fit --checkpoint-every N`` reaches the loop: last/ is written at N, 2N, ... and the end."""
    from personalize import cli, meta_fit
    from personalize.encoder import tiny_encoder
    from personalize.tasks import synthetic

    written: list[int] = []
    save_last = meta_fit._save_last

    def recording(learner, optimizer, schedule, rng, folder, state, config):
        written.append(state["step"])
        save_last(learner, optimizer, schedule, rng, folder, state, config)

    monkeypatch.setattr(meta_fit, "_save_last", recording)
    monkeypatch.setattr("personalize.tasks.load_suite", lambda name: synthetic.synthetic_suite(num_tasks=12))
    monkeypatch.setattr("personalize.encoder.load_encoder", lambda *args, **kwargs: tiny_encoder(seed=0))
    code = cli.main(["meta-fit", "synthetic", "--learner", "protonet", "--out", str(tmp_path / "out"), "--steps", "5",
                     "--meta-batch-size", "2", "--val-episodes", "4", "--checkpoint-dir", str(tmp_path / "run"),
                     "--checkpoint-every", "2"])
    assert code == 0
    assert written == [2, 4, 5]
    assert json.loads((tmp_path / "run" / "last" / "trainer.json").read_text())["state"]["step"] == 5
    assert cli.main(["meta-fit", "synthetic", "--out", str(tmp_path / "out2"), "--checkpoint-every", "0"]) == 1
