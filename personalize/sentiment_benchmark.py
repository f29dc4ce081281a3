"""The few-shot sentiment benchmarks' shared parts: domains, methods, the seeded episode loop, its tables.

``scripts/bench_sentiment.py`` (2-way, unseen domains), ``scripts/bench_multiclass.py`` (3-way),
``scripts/time_adaptation.py`` and ``scripts/probe_sentiment_ceiling.py`` compare methods on the same
seeded episodes. A :class:`Method` turns a support set (texts, class ids) into a predictor of class
ids; :func:`run` scores every method on every (domain, K) cell and :func:`result_tables` writes the
cells as markdown. The baselines' packages (scikit-learn, SetFit) are imported only when a baseline
is built: ``pip install personalize[bench]``.

>>> from personalize.encoder import tiny_encoder
>>> predict = frozen_prototypes(FrozenEmbeddings(tiny_encoder()))(["awful", "lovely"], [0, 1])
>>> predict(["lovely", "awful", "lovely"]).tolist()
[1, 0, 1]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from personalize.extras import require_module
from personalize.tasks import load_suite

if TYPE_CHECKING:
    from personalize.encoder import Encoder
    from personalize.sentiment import SentimentClassifier

DOMAINS = (("clothing-sentiment", "Jackets"), ("clothing-sentiment", "Sweaters"),
           ("clothing-sentiment", "Skirts"), ("movies-sentiment", "movies"))
"""(suite, domain) of the 2-way benchmark: the meta-test clothing classes and Rotten Tomatoes."""

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

    def runs_on(self, task: str, shots: int) -> bool:
        """Whether this method has a cell at (``task``, K = ``shots``)."""
        return (self.shots is None or shots in self.shots) and (self.tasks is None or task in self.tasks)


@dataclass
class Cell:
    """One (domain, K, method) cell: each episode's query accuracy and adaptation seconds."""

    accuracies: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean accuracy, its 95% CI half-width (1.96 s.e.; NaN for one episode), episodes, median fit time."""
        values = np.asarray(self.accuracies)
        half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        return {"mean": float(values.mean()), "ci95": float(half_width), "n": len(values),
                "median_fit_seconds": statistics.median(self.fit_seconds)}


# --- methods ------------------------------------------------------------------------------------------


class FrozenEmbeddings:
    """Unit-length frozen-encoder embeddings, each distinct text computed once."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self.cache]
        if missing:
            for text, vector in zip(missing, self.encoder.embed(missing, normalize=True).numpy()):
                self.cache[text] = vector
        return np.stack([self.cache[text] for text in texts])


def frozen_logistic_regression(embed: FrozenEmbeddings) -> Callable[[list[str], list[int]], Predictor]:
    """scikit-learn's LogisticRegression (defaults, ``max_iter=1000``) on the frozen embeddings."""
    require_module("sklearn", extra="bench", feature="the frozen + logistic regression baseline")
    from sklearn.linear_model import LogisticRegression

    def fit(texts: list[str], labels: list[int]) -> Predictor:
        model = LogisticRegression(max_iter=1000).fit(embed(texts), labels)
        return lambda queries: model.predict(embed(queries))
    return fit


def frozen_prototypes(embed: FrozenEmbeddings) -> Callable[[list[str], list[int]], Predictor]:
    """Nearest unit-length class mean of the frozen embeddings, by cosine."""
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
    for module in ("datasets", "setfit"):
        require_module(module, extra="bench", feature="the SetFit baseline")
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
        domains: Sequence[tuple[str, str]] = DOMAINS, progress: bool = True) -> dict:
    """{domain: {method: {K: summary}}} over the seeded test episodes of each (suite, domain).

    ``progress`` shows a tqdm bar over the (domain, K, method) cells and prints each cell's result."""
    results: dict = {}
    cells = sum(1 for _, task in domains for k in shots for method in methods if method.runs_on(task, k))
    bar = tqdm(total=cells, disable=not progress, desc="benchmark", unit="cell")
    for suite_name, task in domains:
        suite = load_suite(suite_name)
        for k in shots:
            cell_episodes = suite.episodes("test", shots=k, n=episodes, seed=seed, task=task)
            for method in methods:
                if not method.runs_on(task, k):
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
                bar.update()
                if progress:
                    bar.write(f"{task:9s} K={k:<2d} {method.name:34s} {summary['mean']:.3f} ± {summary['ci95']:.3f} "
                              f"(n={summary['n']}, fit {summary['median_fit_seconds'] * 1000:.0f} ms)")
    bar.close()
    return results


# --- report ----------------------------------------------------------------------------------------------


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


__all__ = ["DOMAINS", "Cell", "FrozenEmbeddings", "Method", "Predictor", "adapted", "frozen_logistic_regression",
           "frozen_prototypes", "result_tables", "run", "setfit_method", "zero_shot"]
