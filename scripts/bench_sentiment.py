"""Cross-domain few-shot sentiment: every method on the same seeded episodes of unseen domains.

Domains are the meta-test product classes of ``clothing-sentiment`` (never seen in meta-training
or model selection) and Rotten Tomatoes (``movies-sentiment``). A cell is (domain, K): 2-way
K-shot episodes with 32 queries per class, drawn with ``--seed``; every method sees the same
episodes (methods run on fewer, ``--slow-episodes``, take the first ones). Each method is timed on
its adaptation alone (fitting the support set; zero-shot methods have none).

Methods:

- ``meta <learner>``: the shipped (or ``--classifier``) meta-learned initialization, adapted with
  ``SentimentClassifier.adapt``; ``meta <learner>, zero-shot``: the same without adaptation;
- ``frozen + logistic regression`` and ``frozen prototypes``: the frozen encoder's mean-pooled,
  unit-length embeddings with scikit-learn's LogisticRegression (defaults) or cosine class means;
- ``fresh LoRA fine-tuning``: the shipped adapter layout from a fresh initialization (LoRA B = 0,
  random head), fine-tuned with the same inner steps and step size as the optimization learners;
- ``pooled transfer, zero-shot`` and ``pooled transfer + fine-tuning``: ``--pooled``, the same
  adapters and head trained as one supervised model on all meta-train data (shipped as
  ``sentiment-pooled``, made by ``meta_train.py --learner pooled``), used as is or fine-tuned with
  the same steps;
- ``SetFit``: the ``setfit`` package on the same MiniLM with its default training arguments
  (``--setfit-episodes`` per cell, at ``--setfit-shots``; 0 skips it).

Writes a markdown report, a JSON of every number and a plot (accuracy vs K) into ``--out-dir``::

    python scripts/bench_sentiment.py --slow-episodes 20 --setfit-episodes 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import personalize as pz
from personalize.engine.config import HeadConfig
from personalize.learners import create_learner
from personalize.provenance import machine, portable_args, portable_command
from personalize.sentiment import SentimentClassifier
from personalize.sentiment_benchmark import (
    DOMAINS,
    FrozenEmbeddings,
    Method,
    adapted,
    frozen_logistic_regression,
    frozen_prototypes,
    result_tables,
    run,
    setfit_method,
    zero_shot,
)

# --- report ----------------------------------------------------------------------------------------------


def markdown(results: dict, shots: Sequence[int], header: list[str], goals: list[str],
             table_of_goals: Sequence[str] = ()) -> str:
    lines = [*header, "", *result_tables(results, shots)]
    lines += ["### Goals", "", *goals, ""]
    if table_of_goals:
        lines += ["The same goals for every meta-trained model of the report (K = 8; a dash: not measured):", "",
                  *table_of_goals, ""]
    return "\n".join(lines)


def plot(results: dict, shots: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(name for by_method in results.values() for name in by_method))
    colors = {name: plt.get_cmap("tab20")(index % 20) for index, name in enumerate(names)}  # one per method
    handles: dict[str, object] = {}
    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.8), sharey=True)
    for axis, (task, by_method) in zip(np.atleast_1d(axes), results.items()):
        for name, cells in by_method.items():
            ks = [k for k in shots if str(k) in cells]
            if not ks:
                continue
            style = {"marker": "o", "capsize": 3} if len(ks) > 1 else {"marker": "s", "linestyle": "none", "capsize": 3}
            handles[name] = axis.errorbar(ks, [cells[str(k)]["mean"] for k in ks],
                                          yerr=[cells[str(k)]["ci95"] for k in ks], color=colors[name], **style)
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(shots), [str(k) for k in shots])
        axis.set_title(task)
        axis.set_xlabel("K (support examples per class)")
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("query accuracy (2-way)")
    ordered = [name for name in names if name in handles]
    figure.legend([handles[name] for name in ordered], ordered, loc="lower center", ncol=4, fontsize=8)
    figure.tight_layout(rect=(0, 0.25, 1, 1))
    figure.savefig(path, dpi=110)


def goal_checks(results: dict, meta: str, zero_shot_name: str, pooled: str | None) -> dict[str, tuple[float, bool]]:
    """The issue's goals at K = 8 for the model whose rows are ``meta`` (adapted) and ``zero_shot_name``.

    Returns {goal: (measured value, met)} for each goal the report has the cells to judge.
    """
    def cell(task: str, method: str) -> dict | None:
        return results.get(task, {}).get(method, {}).get("8")

    checks: dict[str, tuple[float, bool]] = {}
    movies = cell("movies", meta)
    clothing = [cell(task, meta) for _, task in DOMAINS[:3]]
    if movies:
        checks["movies"] = (movies["mean"], movies["mean"] >= 0.80)
    if all(clothing):
        worst = min(c["mean"] for c in clothing)
        checks["clothing"] = (worst, worst >= 0.92)
    zero = cell("movies", zero_shot_name)
    if movies and zero:
        gain = movies["mean"] - zero["mean"]
        checks["zero-shot gain"] = (gain, gain >= 0.05)
    tuned = cell("movies", f"{pooled} + fine-tuning") if pooled else None
    if movies and tuned:
        gain = movies["mean"] - tuned["mean"]
        checks["pooled gain"] = (gain, gain > 0)
    times = [c["median_fit_seconds"] for c in [movies, *clothing] if c]
    if times:
        checks["slowest adaptation"] = (max(times), max(times) < 0.1)
        setfit = [c for c in (cell(task, "SetFit") for _, task in DOMAINS) if c]
        if setfit:
            ratio = statistics.median(c["median_fit_seconds"] for c in setfit) / statistics.median(times)
            checks["SetFit ratio"] = (ratio, ratio >= 100)
    return checks


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def goal_lines(results: dict, meta: str, zero_shot_name: str, pooled: str | None) -> list[str]:
    """The goal lines of the judged (shipped) model."""
    checks = goal_checks(results, meta, zero_shot_name, pooled)
    texts = {
        "movies": lambda value: f"Rotten Tomatoes 8-shot >= 0.80: {value:.3f}",
        "clothing": lambda value: f"meta-test clothing classes 8-shot >= 0.92: lowest class {value:.3f}",
        "zero-shot gain": lambda value: f"adapting beats its own zero-shot on Rotten Tomatoes by >= 0.05 at K=8: "
                                        f"{value:+.3f}",
        "pooled gain": lambda value: f"beats pooled transfer + the same adaptation on Rotten Tomatoes at K=8: "
                                     f"{value:+.3f}",
        "slowest adaptation": lambda value: f"one 8-shot adaptation < 0.1 s median on CPU: slowest domain "
                                            f"{value * 1000:.0f} ms",
        "SetFit ratio": lambda value: f">= 100x faster than SetFit: {value:.0f}x",
    }
    return [f"- {texts[goal](value)}, {verdict(met)}" for goal, (value, met) in checks.items()]


GOAL_COLUMNS = {"movies": ("Rotten Tomatoes >= 0.80", "{:.3f}".format),
                "clothing": ("lowest clothing class >= 0.92", "{:.3f}".format),
                "zero-shot gain": ("over its own zero-shot on RT >= +0.05", "{:+.3f}".format),
                "pooled gain": ("over pooled + the same adaptation on RT > 0", "{:+.3f}".format),
                "slowest adaptation": ("slowest adaptation < 0.1 s", lambda seconds: f"{seconds * 1000:.0f} ms")}


def goal_table(results: dict, models: Sequence[tuple[str, str]], pooled: str | None) -> list[str]:
    """One row per model (adapted row, zero-shot row): the same goals, at K = 8, as the shipped model's."""
    lines = ["| model (K = 8) | " + " | ".join(title for title, _ in GOAL_COLUMNS.values()) + " |",
             "|---|" + "---|" * len(GOAL_COLUMNS)]
    for meta, zero_shot_name in models:
        checks = goal_checks(results, meta, zero_shot_name, pooled)
        cells = [f"{form(checks[goal][0])} {'met' if checks[goal][1] else 'missed'}" if goal in checks else "—"
                 for goal, (_, form) in GOAL_COLUMNS.items()]
        lines.append(f"| {meta} | " + " | ".join(cells) + " |")
    return lines


def model_rows(document: dict) -> list[tuple[str, str]]:
    """(adapted row, zero-shot row) of the shipped model, then of each model added with ``--extra``,
    then of each model that was shipped before (``"earlier_models"``).

    Runs from before the rows were recorded name them in their command's ``--only`` options.
    """
    models = [(document["meta_method"], document["zero_shot_method"])]
    for entry in document["runs"]:
        if "model" not in entry:
            continue
        if "rows" in entry:
            models.append(tuple(entry["rows"]))
            continue
        words = shlex.split(entry["command"])
        only = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--only"]
        zero = [name for name in only if name.endswith(", zero-shot")]
        adapted_rows = [name for name in only if not name.endswith(", zero-shot")]
        if len(zero) == 1 and len(adapted_rows) == 1:
            models.append((adapted_rows[0], zero[0]))
    models += [tuple(rows) for rows in document.get("earlier_models", [])]
    return list(dict.fromkeys(models))


def build_methods(args: argparse.Namespace,
                  classifier: SentimentClassifier) -> tuple[list[Method], str, str, str | None]:
    """Every method of the table, and the names of the model's row, its zero-shot row and the pooled one."""
    encoder = classifier.encoder
    base = args.label or f"meta {classifier.learner.name}"
    meta = base + (f", prior {classifier.prior_strength:g}" if classifier.prior_strength else "")
    methods = [Method(meta, adapted(classifier), args.episodes),
               Method(f"{base}, zero-shot", zero_shot(classifier), args.episodes, adapts=False)]
    embed = FrozenEmbeddings(encoder)
    methods += [Method("frozen + logistic regression", frozen_logistic_regression(embed), args.episodes),
                Method("frozen prototypes", frozen_prototypes(embed), args.episodes)]
    steps = {"inner_steps": args.inner_steps, "inner_lr": args.inner_lr}
    fresh = create_learner("fomaml", encoder, adapter=classifier.learner.config.adapter,
                           head=HeadConfig(num_classes=2), seed=args.seed, **steps)
    methods.append(Method("fresh LoRA fine-tuning", adapted(SentimentClassifier(fresh, {})), args.slow_episodes))
    pooled_name = None
    if args.pooled:
        pooled = pz.load(args.pooled, encoder=encoder)
        if (pooled.learner.config.inner_steps, pooled.learner.config.inner_lr) != (args.inner_steps, args.inner_lr):
            sys.exit(f"{args.pooled} fine-tunes with other steps than --inner-steps/--inner-lr")
        pooled_name = "pooled transfer"
        methods += [Method(f"{pooled_name}, zero-shot", zero_shot(pooled), args.episodes, adapts=False),
                    Method(f"{pooled_name} + fine-tuning", adapted(pooled), args.slow_episodes)]
    if args.setfit_episodes:
        from personalize.encoder_sources import bundled_model_dir

        scratch = Path(tempfile.mkdtemp(prefix="setfit-"))
        methods.append(Method("SetFit", setfit_method(str(bundled_model_dir()), scratch), args.setfit_episodes,
                              shots=tuple(int(k) for k in args.setfit_shots.split(",")),
                              tasks=tuple(args.setfit_tasks.split(",")) if args.setfit_tasks else None))
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {method.name for method in methods}
        if unknown:
            sys.exit(f"--only: unknown method(s) {sorted(unknown)}; methods are {[m.name for m in methods]}")
        methods = [method for method in methods if method.name in wanted]
    return methods, meta, f"{base}, zero-shot", pooled_name


def measured_shots(results: dict) -> list[int]:
    """Every K with a cell in ``results``: the report's columns, so a ``--merge`` run at fewer K keeps the others."""
    return sorted({int(k) for by_method in results.values() for cells in by_method.values() for k in cells})


def render(document: dict, out: Path) -> list[str]:
    """Write the markdown report and the plot from the JSON document; returns the goal lines."""
    shots = measured_shots(document["results"])
    model = document["model"]
    runs = [f"    python {run['command']}" + (f"    # {run['seconds']:.0f} s, {run['machine']}, {run['date']}"
                                               if "seconds" in run else "") for run in document["runs"]]
    header = [
        "# Cross-domain few-shot sentiment benchmark",
        "",
        "Generated by `scripts/bench_sentiment.py` (do not edit by hand) from these runs, later runs "
        "(`--merge`) replacing the cells they measured:",
        "",
        *runs,
        "",
        f"Episodes: 2-way, K support and 32 query examples per class, seed {document['seed']}, the same "
        "for every method (a method run on fewer episodes takes the first ones). Cells: mean query "
        "accuracy ± 95% CI half-width (1.96 s.e.), episodes in parentheses. Adapt time: median wall "
        "time of fitting one 8-shot support set, one episode at a time, on the machine of the run "
        "(frozen-encoder methods embed each distinct text once per run, so theirs is mostly the "
        "classifier fit). Domains: the meta-test clothing classes and Rotten Tomatoes (`movies`), none "
        "of them seen in meta-training or model selection.",
        "",
        f"Shipped model: {model}",
        "",
        "![accuracy vs K](sentiment-benchmark.png)",
    ]
    pooled = document.get("pooled_method")
    goals = goal_lines(document["results"], document["meta_method"], document["zero_shot_method"], pooled)
    table = goal_table(document["results"], model_rows(document), pooled)
    (out / "sentiment-benchmark.md").write_text(markdown(document["results"], shots, header, goals, table),
                                                encoding="utf-8")
    plot(document["results"], shots, out / "sentiment-benchmark.png")
    return goals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", default="sentiment", help="shipped name or folder (default: sentiment)")
    parser.add_argument("--pooled", default="sentiment-pooled",
                        help="pooled-transfer classifier: shipped name or folder (default sentiment-pooled); "
                             "'' skips it")
    parser.add_argument("--shots", default="2,4,8,16", help="K values (default 2,4,8,16)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per cell (default 100)")
    parser.add_argument("--slow-episodes", type=int, default=100,
                        help="episodes per cell for the fine-tuning methods (default 100)")
    parser.add_argument("--setfit-episodes", type=int, default=0, help="SetFit episodes per cell (default 0: skip)")
    parser.add_argument("--setfit-shots", default="8", help="K values for SetFit (default 8)")
    parser.add_argument("--setfit-tasks", help="comma-separated domains for SetFit (default: all)")
    parser.add_argument("--inner-steps", type=int, default=5, help="fine-tuning steps (default 5, as fomaml)")
    parser.add_argument("--inner-lr", type=float, default=0.1, help="fine-tuning step size (default 0.1, as fomaml)")
    parser.add_argument("--label", help="row name of --classifier's rows (default 'meta <learner>')")
    parser.add_argument("--only", action="append", help="run only this method (repeat for several; default: all)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the cells of the existing JSON in --out-dir that this run does not measure")
    parser.add_argument("--extra", action="store_true",
                        help="with --merge: add --classifier's rows beside the shipped model's, which stays the "
                             "model the goal lines judge")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16", "int8"),
                        help="the encoder's precision (default auto: bfloat16 inference on CPUs that have it)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--out-dir", default="docs", help="where the report, JSON and plot go (default docs)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    shots = tuple(int(k) for k in args.shots.split(","))
    out = Path(args.out_dir)
    json_path = out / "sentiment-benchmark.json"
    document = {"runs": [], "results": {}}
    if args.merge:
        if not json_path.is_file():
            sys.exit(f"--merge: {json_path} does not exist; run without --merge first")
        document = json.loads(json_path.read_text(encoding="utf-8"))
        document.setdefault("runs", [])
        if "command" in document:  # a report from before runs were listed: its one command
            document["runs"].insert(0, {"command": document.pop("command")})
        if document.get("seed", args.seed) != args.seed:
            sys.exit(f"--merge: {json_path} used seed {document['seed']}, not {args.seed}: the episodes would differ")

    if args.extra and not args.merge:
        sys.exit("--extra adds rows to an existing report: use it with --merge")
    classifier = pz.load(args.classifier)
    classifier.encoder.precision = args.precision
    methods, meta, zero_shot_name, pooled_name = build_methods(args, classifier)
    started = time.perf_counter()
    results = run(methods, shots, args.episodes, args.seed)
    for task, by_method in results.items():
        for name, cells in by_method.items():
            document["results"].setdefault(task, {}).setdefault(name, {}).update(cells)
    record = classifier.record
    trained_by = portable_command(record.get("command", "?"))  # its training command, no path of that machine
    run_entry = {"command": "scripts/bench_sentiment.py " + shlex.join(portable_args(sys.argv[1:])),
                 "seconds": time.perf_counter() - started, "date": str(datetime.date.today()),
                 "machine": machine(classifier.encoder)}
    if args.extra:  # another model's rows beside the shipped one: the goal lines keep the shipped model
        run_entry["model"] = f"`{classifier.learner.name}` trained by `{trained_by}`"
        run_entry["rows"] = [meta, zero_shot_name]
    else:
        earlier = (document.get("meta_method"), document.get("zero_shot_method"))
        if earlier[0] not in (None, meta):  # a new shipped model: the former one keeps its goal-table row
            document.setdefault("earlier_models", []).append(list(earlier))
        document.update({
            "seed": args.seed,
            "meta_method": meta,
            "zero_shot_method": zero_shot_name,
            "pooled_method": pooled_name or document.get("pooled_method"),
            "model": (f"`{classifier.learner.name}`"
                      + (f" (prior strength {classifier.prior_strength:g})" if classifier.prior_strength else "")
                      + ", trained by "
                      f"`{trained_by}` (seed {record.get('seed', '?')}, "
                      f"{record.get('wall_seconds', '?')} s on {record.get('device', '?')}, "
                      f"{record.get('machine', '')}); {record.get('steps_done', '?')} "
                      f"steps, best meta-validation loss {record.get('best_val_loss', float('nan')):.3f} at step "
                      f"{record.get('best_step', '?')}."),
        })
    document["runs"].append(run_entry)
    out.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print("\n".join(render(document, out)))

if __name__ == "__main__":
    main()
