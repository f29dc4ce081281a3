"""Packaging: a lean core install, the extras, the app in the wheel, ``personalize app``, and logging.

The core dependencies must not pull Streamlit or HF datasets, and importing the library (engine,
learners, showcases) must not import them; a feature of an extra that is missing says which
``pip install personalize[...]`` to run.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from personalize.cli import build_parser, main
from personalize.errors import MissingDependencyError

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
OPTIONAL = ("streamlit", "datasets", "scikit-learn", "sklearn", "selenium", "matplotlib", "setfit", "pytest")


def requirement_name(requirement: str) -> str:
    name = requirement.split(";")[0]
    for mark in "[<>=!~ ":
        name = name.split(mark)[0]
    return name.strip().lower()


def test_core_dependencies_exclude_the_app_hf_and_test_packages() -> None:
    core = {requirement_name(r) for r in PYPROJECT["dependencies"]}
    assert {"torch", "transformers", "peft", "safetensors", "numpy", "polars"} <= core
    assert core.isdisjoint(OPTIONAL), core & set(OPTIONAL)


def test_installed_metadata_agrees_when_built_from_this_pyproject() -> None:
    from importlib.metadata import PackageNotFoundError, requires

    try:
        installed = requires("personalize") or []
    except PackageNotFoundError:
        pytest.skip("personalize is not installed (run from a checkout without pip install)")
    core = {requirement_name(r) for r in installed if "extra ==" not in r}
    if "streamlit" in core:
        pytest.skip("the installed metadata predates the lean core (reinstall: make install)")
    assert core.isdisjoint(OPTIONAL)


def test_extras_hold_what_each_feature_needs() -> None:
    extras = {name: {requirement_name(r) for r in reqs} for name, reqs in PYPROJECT["optional-dependencies"].items()}
    assert extras["app"] == {"streamlit"} and extras["hf"] == {"datasets"} and extras["sklearn"] == {"scikit-learn"}
    test = PYPROJECT["optional-dependencies"]["test"]
    assert any(r.startswith("personalize[") and {"app", "hf", "sklearn"} <= set(r[12:-1].split(",")) for r in test)
    assert extras["ray"] == {"ray"}  # --engine ray of the batch jobs; the suite tests it
    assert any(r.startswith("personalize[") and "ray" in r[12:-1].split(",") for r in test)


def test_importing_the_library_loads_no_app_hf_or_sklearn_package() -> None:
    code = ("import sys, personalize, personalize.engine, personalize.learners, personalize.meta_fit, "
            "personalize.sentiment, personalize.task_model, personalize.loading, personalize.app, personalize.cli; "
            "print(sorted(m for m in ('streamlit', 'datasets', 'sklearn') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_the_library_works_with_streamlit_datasets_and_sklearn_unimportable() -> None:
    code = ("import sys; sys.modules.update(streamlit=None, datasets=None, sklearn=None)\n"
            "import personalize as pz\n"
            "from personalize.learners import create_learner\n"
            "from personalize.task_model import adapt_tasks\n"
            "[model] = adapt_tasks(create_learner('protonet', pz.tiny_encoder()), [(['good', 'bad'], [1, 0])])\n"
            "print(model.predict(['good']))\n"
            "try:\n    import personalize.estimator\n"
            "except ImportError as error:\n    print(type(error).__name__, error)\n")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.splitlines()[0] == "[1]"
    assert output.splitlines()[1].startswith("MissingDependencyError personalize.FewShotClassifier needs")
    assert "pip install personalize[sklearn]" in output


def test_to_hf_without_datasets_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    pl = pytest.importorskip("polars")
    from personalize.data.local import LocalDataset

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MissingDependencyError,
                       match=r"to_hf\(\) needs the datasets package.*pip install personalize\[hf\]"):
        LocalDataset("toy", {"t": pl.DataFrame({"a": [1]})}).to_hf()


# --- the app in the wheel and `personalize app` ----------------------------------------------------------


def test_the_wheel_packages_the_app_where_the_launcher_looks() -> None:
    import personalize.app as app

    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]
    included = build["targets"]["wheel"]["force-include"]
    assert included["apps"] == "personalize/" + app.PACKAGED_APP.name
    # apps/showcase.py reads <app folder>/../docs: in the wheel that is personalize/docs
    docs = {target for source, target in included.items() if source.startswith("docs/")}
    pages = (ROOT / "apps" / "pages" / "3_Benchmarks.py").read_text(encoding="utf-8")
    for stem in ("sentiment-benchmark", "sentiment-speed", "recommend-benchmark", "engine-benchmark-cpu"):
        assert f'"{stem}"' in pages and f"personalize/docs/{stem}.md" in docs
    assert app.home_path() == ROOT / "apps" / "Home.py"  # in a checkout: the repository's app


def test_app_command_runs_streamlit_on_the_packaged_home(monkeypatch: pytest.MonkeyPatch) -> None:
    import personalize.app as app

    started = []

    class FakeProcess:
        def __init__(self, command):
            started.append(command)

        def wait(self):
            return 0

    monkeypatch.setattr(app, "is_installed", lambda name: True)
    monkeypatch.setattr(app.subprocess, "Popen", FakeProcess)
    assert main(["app", "--port", "8765", "--headless"]) == 0
    [command] = started
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(ROOT / "apps" / "Home.py")]
    assert command[command.index("--server.port") + 1] == "8765" and "--server.headless" in command


def test_app_command_without_streamlit_is_one_line_naming_the_extra(monkeypatch, capsys) -> None:
    import personalize.app as app

    monkeypatch.setitem(sys.modules, "streamlit", None)
    monkeypatch.setattr(app.subprocess, "Popen", lambda *a, **k: pytest.fail("must not start anything"))
    assert main(["app"]) == 1
    error = capsys.readouterr().err
    assert error == ("personalize: error: personalize app needs the streamlit package, which is not installed; "
                     "install it with: pip install personalize[app]\n")


def test_app_help_and_print_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["app", "--help"])
    assert stop.value.code == 0 and "--port" in capsys.readouterr().out
    assert main(["app", "--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(ROOT / "apps" / "Home.py")


# --- logging --------------------------------------------------------------------------------------------------


def test_library_logs_are_quiet_unless_the_cli_is_verbose(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import personalize.cli as cli

    def noisy(args) -> None:
        logging.getLogger("personalize.somewhere").info("library detail")
        print("command output")

    monkeypatch.setattr(cli, "cmd_data_path", noisy)
    assert main(["data", "path"]) == 0
    assert capsys.readouterr() == ("command output\n", "")
    for argv in (["-v", "data", "path"], ["data", "path", "-v"], ["data", "-v", "path"]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert out == "command output\n" and err == "[personalize.somewhere] library detail\n", argv
    assert main(["data", "path"]) == 0  # the handler is gone after the command
    assert capsys.readouterr().err == ""


def test_the_package_logger_has_only_a_null_handler_by_default() -> None:
    code = ("import logging, personalize; h = logging.getLogger('personalize').handlers; "
            "print([type(x).__name__ for x in h], logging.getLogger('personalize').getEffectiveLevel())")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['NullHandler'] 30"


def test_meta_fit_logs_each_validation_at_info() -> None:
    from personalize.encoder import tiny_encoder
    from personalize.learners import create_learner
    from personalize.logs import show_logs
    from personalize.meta_fit import MetaFitConfig, meta_fit
    from personalize.tasks.synthetic import synthetic_suite

    stream = io.StringIO()
    with show_logs(stream=stream, fmt="%(name)s %(message)s"):
        meta_fit(create_learner("protonet", tiny_encoder()), synthetic_suite(num_tasks=20),
                 MetaFitConfig(steps=2, val_every=1, val_episodes=2, progress=False))
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"personalize.meta_fit protonet step {s:5d}" for s in (0, 1, 2)]
    assert all("val loss" in line for line in lines)


def test_embed_shows_a_progress_bar_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    from personalize.encoder import tiny_encoder

    encoder = tiny_encoder()
    quiet = encoder.embed(["a", "b", "c"], batch_size=2)
    assert capsys.readouterr().err == ""
    shown = encoder.embed(["a", "b", "c"], batch_size=2, progress=True)
    assert "embed" in capsys.readouterr().err and bool((quiet == shown).all())
