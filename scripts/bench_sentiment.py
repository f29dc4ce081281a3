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
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import personalize as pz
from personalize.engine.config import HeadConfig
from personalize.learners import create_learner
from personalize.sentiment import SentimentClassifier
from personalize.tasks import load_suite

DOMAINS = (("clothing-sentiment", "Jackets"), ("clothing-sentiment", "Sweaters"),
           ("clothing-sentiment", "Skirts"), ("movies-sentiment", "movies"))
Predictor = Callable[[list[str]], np.ndarray]


@dataclass
class Method:
    """A named way to turn a support set into a predictor of class ids (0 = negative, 1 = positive)."""

    name: str
    fit: Callable[[list[str], list[int]], Predictor]
    episodes: int
    shots: tuple[int, ...] | None = None  # None = every K
    tasks: tuple[str, ...] | None = None  # None = every domain
    adapts: bool = True


@dataclass
class Cell:
    accuracies: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        values = np.asarray(self.accuracies)
        half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        return {"mean": float(values.mean()), "ci95": float(half_width), "n": len(values),
                "median_fit_seconds": statistics.median(self.fit_seconds)}


# --- methods ------------------------------------------------------------------------------------------


class FrozenEmbeddings:
    """Unit-length frozen-encoder embeddings, each distinct text computed once."""

    def __init__(self, encoder: pz.encoder.Encoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.cache]
        if missing:
            for text, vector in zip(missing, self.encoder.embed(missing, normalize=True).numpy()):
                self.cache[text] = vector
        return np.stack([self.cache[text] for text in texts])


def frozen_logistic_regression(embed: FrozenEmbeddings) -> Callable[[list[str], list[int]], Predictor]:
    from sklearn.linear_model import LogisticRegression

    def fit(texts: list[str], labels: list[int]) -> Predictor:
        model = LogisticRegression(max_iter=1000).fit(embed(texts), labels)
        return lambda queries: model.predict(embed(queries))
    return fit


def frozen_prototypes(embed: FrozenEmbeddings) -> Callable[[list[str], list[int]], Predictor]:
    def fit(texts: list[str], labels: list[int]) -> Predictor:
        vectors, labels_array = embed(texts), np.asarray(labels)
        prototypes = np.stack([vectors[labels_array == c].mean(0) for c in range(labels_array.max() + 1)])
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        return lambda queries: (embed(queries) @ prototypes.T).argmax(1)
    return fit


def adapted(classifier: SentimentClassifier) -> Callable[[list[str], list[int]], Predictor]:
    """Adapt with the classifier's own label names (so a shipped prior applies), map back to ids."""
    names = classifier.labels

    def fit(texts: list[str], labels: list[int]) -> Predictor:
        model = classifier.adapt(texts, [names[label] for label in labels], classes=names)
        return lambda queries: np.asarray([names.index(label) for label in model.predict(queries)])
    return fit


def zero_shot(classifier: SentimentClassifier) -> Callable[[list[str], list[int]], Predictor]:
    """No adaptation; predictions are per text, so each distinct query text is scored once."""
    model, cache = classifier.zero_shot(), {}

    def predict(queries: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(queries) if text not in cache]
        if missing:
            cache.update(zip(missing, (classifier.labels.index(label) for label in model.predict(missing))))
        return np.asarray([cache[text] for text in queries])
    return lambda texts, labels: predict


def setfit_method(model_path: str, scratch: Path) -> Callable[[list[str], list[int]], Predictor]:
    """SetFit's default training arguments; only where it writes (nothing kept) and its logging differ."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    arguments = TrainingArguments(output_dir=str(scratch), save_strategy="no", report_to="none",
                                  show_progress_bar=False)

    def fit(texts: list[str], labels: list[int]) -> Predictor:
        model = SetFitModel.from_pretrained(model_path, local_files_only=True)
        Trainer(model=model, args=arguments, train_dataset=Dataset.from_dict({"text": texts, "label": labels})).train()
        return lambda queries: np.asarray(model.predict(queries, show_progress_bar=False)).astype(int)
    return fit


# --- running --------------------------------------------------------------------------------------------


def run(methods: list[Method], shots: Sequence[int], episodes: int, seed: int,
        domains: Sequence[tuple[str, str]] = DOMAINS) -> dict:
    """{domain: {method: {K: summary}}} over the seeded test episodes of each (suite, domain)."""
    results: dict = {}
    for suite_name, task in domains:
        suite = load_suite(suite_name)
        for k in shots:
            cell_episodes = suite.episodes("test", shots=k, n=episodes, seed=seed, task=task)
            for method in methods:
                if (method.shots is not None and k not in method.shots) or (
                        method.tasks is not None and task not in method.tasks):
                    continue
                cell = Cell()
                for episode in cell_episodes[: method.episodes]:
                    labels = [int(label) for label in episode.support_labels]
                    started = time.perf_counter()
                    predictor = method.fit(episode.support_texts, labels)
                    cell.fit_seconds.append(time.perf_counter() - started if method.adapts else 0.0)
                    predicted = predictor(episode.query_texts)
                    cell.accuracies.append(float((predicted == episode.query_labels).mean()))
                summary = cell.summary()
                results.setdefault(task, {}).setdefault(method.name, {})[str(k)] = summary
                print(f"{task:9s} K={k:<2d} {method.name:34s} {summary['mean']:.3f} ± {summary['ci95']:.3f} "
                      f"(n={summary['n']}, fit {summary['median_fit_seconds'] * 1000:.0f} ms)", flush=True)
    return results


# --- report ----------------------------------------------------------------------------------------------


def markdown(results: dict, shots: Sequence[int], header: list[str], goals: list[str],
             table_of_goals: Sequence[str] = ()) -> str:
    lines = [*header, "", *result_tables(results, shots)]
    lines += ["### Goals", "", *goals, ""]
    if table_of_goals:
        lines += ["The same goals for every meta-trained model of the report (K = 8; a dash: not measured):", "",
                  *table_of_goals, ""]
    return "\n".join(lines)


def result_tables(results: dict, shots: Sequence[int]) -> list[str]:
    """One markdown table per domain: a row per method, a column per K, and the 8-shot adaptation time."""
    lines: list[str] = []
    for task, by_method in results.items():
        lines += [f"### {task}", "", "| method | " + " | ".join(f"K={k}" for k in shots) + " | adapt time, K=8 |",
                  "|---|" + "---:|" * (len(shots) + 1)]
        for name, cells in by_method.items():
            row = [f"{cells[str(k)]['mean']:.3f} ± {cells[str(k)]['ci95']:.3f} ({cells[str(k)]['n']})"
                   if str(k) in cells else "—" for k in shots]
            timing = cells.get("8", {}).get("median_fit_seconds")
            shown = "—" if timing is None else f"{timing * 1000:.0f} ms"
            lines.append(f"| {name} | " + " | ".join(row) + f" | {shown} |")
        lines.append("")
    return lines


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
    for run in document["runs"]:
        if "model" not in run:
            continue
        if "rows" in run:
            models.append(tuple(run["rows"]))
            continue
        words = shlex.split(run["command"])
        only = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--only"]
        zero = [name for name in only if name.endswith(", zero-shot")]
        adapted_rows = [name for name in only if not name.endswith(", zero-shot")]
        if len(zero) == 1 and len(adapted_rows) == 1:
            models.append((adapted_rows[0], zero[0]))
    models += [tuple(rows) for rows in document.get("earlier_models", [])]
    return list(dict.fromkeys(models))


def machine(encoder: pz.encoder.Encoder | None = None) -> str:
    """This run's processor and torch threads, and the encoder's device and inference arithmetic if given.

    For example ``x86_64, 2 torch threads, cpu, bfloat16 inference``.
    """
    text = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if encoder is not None:
        dtype = str(encoder.compute_dtype(inference=True)).removeprefix("torch.")
        text += f", {encoder.device}, " + ("int8-weight" if encoder.precision == "int8" else dtype) + " inference"
    return text


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
    run_entry = {"command": "scripts/bench_sentiment.py " + shlex.join(sys.argv[1:]),
                 "seconds": time.perf_counter() - started, "date": str(datetime.date.today()),
                 "machine": machine(classifier.encoder)}
    if args.extra:  # another model's rows beside the shipped one: the goal lines keep the shipped model
        run_entry["model"] = f"`{classifier.learner.name}` trained by `{record.get('command', '?')}`"
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
                      f"`{record.get('command', '?')}` (seed {record.get('seed', '?')}, "
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
