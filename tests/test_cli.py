"""The command line: every subcommand has --help, errors print one line and exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from personalize.cli import build_parser, main

SUBCOMMANDS = [[], ["data"], ["data", "fetch"], ["data", "list"], ["data", "path"], ["suites"],
               ["suites", "list"], ["suites", "sample"], ["encoder"], ["encoder", "info"], ["meta-fit"], ["demo"]]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda words: " ".join(words) or "personalize")
def test_every_subcommand_has_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([*words, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: personalize")


def test_a_library_error_is_one_line_with_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "sample", "no-such-suite"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("personalize: error: no suite 'no-such-suite'") and "clothing-sentiment" in error


def test_data_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("PERSONALIZE_DATA", str(tmp_path))
    assert main(["data", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)


def test_importing_personalize_loads_no_heavy_optional_dependency() -> None:
    code = ("import sys, personalize; import personalize.tasks, personalize.errors; "
            "print(sorted(m for m in ('polars', 'datasets', 'streamlit') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


@pytest.mark.slow
def test_suites_list_prints_every_suite_with_its_sizes(real_data, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "list"]) == 0
    table = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(rows) == {"clothing-sentiment", "clothing-sentiment-3way", "movielens-users", "movies-sentiment",
                         "multi-domain-sentiment"}
    assert "| 12808 " in rows["movies-sentiment"] and "3-way, 32 queries/class" in rows["clothing-sentiment-3way"]
    assert "clothing-reviews + vader-snippets + pattern-polarity" in rows["multi-domain-sentiment"]


@pytest.mark.slow
def test_suites_sample_prints_labelled_support_texts(real_data, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suites", "sample", "clothing-sentiment", "--shots", "2"]) == 0
    out = capsys.readouterr().out
    assert "2-way 2-shot" in out and out.count("[negative]") == 2 and out.count("[positive]") == 2


def test_demo_refuses_an_unknown_precision_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    from personalize.cli import sentiment_demo
    from personalize.errors import ConfigError

    with pytest.raises(ConfigError, match="precision must be None or one of"):
        sentiment_demo(precision="int4")
    assert capsys.readouterr().out == ""
    assert main(["demo", "--precision", "int4"]) == 1  # the command says so before fetching anything
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("personalize: error: --precision must be one of auto")


@pytest.mark.slow
def test_sentiment_demo_runs_the_shipped_model_at_the_precision_asked(real_data, capsys) -> None:
    from personalize.cli import sentiment_demo

    sentiment_demo(shots=2, episodes=1, precision="float32")
    out = capsys.readouterr().out
    assert "(float32 precision)" in out
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if line.startswith("|")}
    assert {"movies", "Jackets", "Skirts"} <= set(rows)
    assert all(0.5 < float(rows[domain][3]) <= 1.0 for domain in ("Jackets", "Skirts"))  # adapted accuracy
