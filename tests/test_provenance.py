"""personalize.provenance: generated files record their command and machine, never a path of that machine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from personalize.encoder import tiny_encoder
from personalize.learners import create_learner
from personalize.meta_fit import MetaFitConfig, meta_fit
from personalize.provenance import REPO_ROOT, machine, portable_args, portable_command, portable_path
from personalize.tasks.synthetic import synthetic_suite

ROOT = Path(__file__).resolve().parent.parent
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home|tmp|Users|mnt|scratch)/")


def test_paths_inside_the_repository_are_relative_to_it_and_others_keep_their_name() -> None:
    shipped = REPO_ROOT / "personalize" / "pretrained" / "sentiment"
    assert portable_path(str(shipped)) == "personalize/pretrained/sentiment"
    assert portable_path(str(REPO_ROOT)) == "."
    assert portable_path("/elsewhere/runs/sentiment-ckpt") == "sentiment-ckpt"
    assert portable_path("runs/mine") == "runs/mine"  # relative: as given


def test_arguments_and_recorded_commands_lose_their_absolute_paths(tmp_path) -> None:
    args = ["--classifier", str(tmp_path / "select"), f"--out-dir={tmp_path}/docs", "--only", "meta a, zero-shot"]
    assert portable_args(args) == ["--classifier", "select", "--out-dir=docs", "--only", "meta a, zero-shot"]
    recorded = f"python scripts/meta_train.py --out {tmp_path}/run --label 'a b'"
    assert portable_command(recorded) == "python scripts/meta_train.py --out run --label 'a b'"
    untouched = "python scripts/meta_train.py --learner a,b  --out runs/x"  # no path: not even re-spaced
    assert portable_command(untouched) == untouched
    assert not MACHINE_PATH.search(portable_command(recorded))


def test_machine_names_threads_and_the_encoders_inference() -> None:
    assert re.fullmatch(r".+, \d+ torch threads", machine())
    assert re.fullmatch(r".+, \d+ torch threads, cpu, \w+ inference", machine(tiny_encoder()))


def test_a_checkpointed_learner_records_its_checkpoint_folder_by_name(tmp_path) -> None:
    config = MetaFitConfig(steps=2, val_every=2, progress=False, checkpoint_dir=str(tmp_path / "ckpt"))
    learner = meta_fit(create_learner("protonet", tiny_encoder()), synthetic_suite(num_tasks=20), config)
    assert learner.record["fit_config"]["checkpoint_dir"] == "ckpt"
    assert (tmp_path / "ckpt").is_dir()  # the run itself used the real folder


@pytest.mark.parametrize("path", [*sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*.json")),
                                  *sorted((ROOT / "personalize" / "pretrained").rglob("*.json"))],
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_generated_files_hold_no_path_of_the_machine_they_ran_on(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        json.loads(text)  # still valid after the paths were made portable
    assert not MACHINE_PATH.search(text), MACHINE_PATH.search(text)
