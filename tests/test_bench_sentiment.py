"""The sentiment benchmark's report logic (scripts/bench_sentiment.py): columns and goal verdicts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_sentiment.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sentiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def cell(mean: float, seconds: float = 0.05) -> dict:
    return {"mean": mean, "ci95": 0.01, "n": 100, "median_fit_seconds": seconds}


def test_report_columns_are_every_k_measured_and_missing_cells_show_a_dash(bench):
    results = {"movies": {"meta protonet": {"2": cell(0.6), "8": cell(0.7)}, "SetFit": {"8": cell(0.58, 15.0)}}}
    shots = bench.measured_shots(results)
    assert shots == [2, 8]
    text = bench.markdown(results, shots, ["# header"], ["- goal"])
    assert "| method | K=2 | K=8 | adapt time, K=8 |" in text
    setfit_row = next(line for line in text.splitlines() if line.startswith("| SetFit"))
    assert setfit_row.split("|")[2].strip() == "—" and "15000 ms" in setfit_row


def test_goal_lines_judge_each_goal_from_the_cells(bench):
    results = {task: {"meta": {"8": cell(0.93, 0.08)}, "meta, zero-shot": {"8": cell(0.90)}}
               for task in ("Jackets", "Sweaters", "Skirts")}
    results["movies"] = {"meta": {"8": cell(0.82, 0.09)}, "meta, zero-shot": {"8": cell(0.75)},
                         "pooled + fine-tuning": {"8": cell(0.83, 1.0)}, "SetFit": {"8": cell(0.6, 12.0)}}
    lines = "\n".join(bench.goal_lines(results, "meta", "meta, zero-shot", "pooled"))
    assert "Rotten Tomatoes 8-shot >= 0.80: 0.820, met" in lines
    assert "lowest class 0.930, met" in lines
    assert "by >= 0.05 at K=8: +0.070, met" in lines
    assert "same adaptation on Rotten Tomatoes at K=8: -0.010, **missed**" in lines
    assert "slowest domain 90 ms, met" in lines
    assert ">= 100x faster than SetFit: 150x, met" in lines  # 12 s over the median domain, 0.08 s


def test_every_models_rows_get_the_same_goals_in_a_table(bench):
    results = {task: {"meta a": {"8": cell(0.93, 0.08)}, "meta a, zero-shot": {"8": cell(0.90)},
                      "meta b": {"8": cell(0.85, 0.5)}}
               for task in ("Jackets", "Sweaters", "Skirts", "movies")}
    results["movies"]["meta b, zero-shot"] = {"8": cell(0.70)}
    document = {"meta_method": "meta a", "zero_shot_method": "meta a, zero-shot", "results": results, "runs": [
        {"command": "scripts/bench_sentiment.py --merge"},
        {"command": "scripts/bench_sentiment.py --merge --extra --only 'meta b' --only 'meta b, zero-shot'",
         "model": "`b`"},                                            # an older run: rows named by --only
        {"command": "scripts/bench_sentiment.py --merge --extra", "model": "`c`", "rows": ["meta c", "meta c, 0"]},
    ], "earlier_models": [["meta d", "meta d, zero-shot"]]}                 # shipped before "meta a"
    models = bench.model_rows(document)
    assert models == [("meta a", "meta a, zero-shot"), ("meta b", "meta b, zero-shot"), ("meta c", "meta c, 0"),
                      ("meta d", "meta d, zero-shot")]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in bench.goal_table(results, models, pooled=None)[2:]}
    assert rows["meta a"] == ["0.930 met", "0.930 met", "+0.030 missed", "—", "80 ms met"]
    assert rows["meta b"] == ["0.850 met", "0.850 missed", "+0.150 met", "—", "500 ms missed"]
    assert rows["meta c"] == rows["meta d"] == ["—"] * 5  # a model without cells is listed, not guessed
