"""The benchmark reports as tidy tables: the curated comparisons a reader (and the app) charts.

Each showcase's benchmark script writes a JSON document beside its markdown report
(``docs/sentiment-benchmark.json``, ``docs/recommend-benchmark.json``). The report holds every
variant measured; a reader first wants the shipped model against its real alternatives. These
functions pick those rows out of a document and return long-format polars frames, one row per
(method, x) with the mean and its 95% confidence half-width, ready for a line chart with error
bands. Methods a document lacks are left out; nothing is computed here, only read.

>>> document = {"meta_method": "meta m", "zero_shot_method": "meta m, zero-shot", "results": {
...     "movies": {"meta m": {"2": {"mean": 0.7, "ci95": 0.02, "n": 100}},
...                "SetFit": {"2": {"mean": 0.6, "ci95": 0.03, "n": 20}},
...                "fresh LoRA fine-tuning": {"2": {"mean": 0.5, "ci95": 0.04, "n": 20}}}}}
>>> sentiment_comparison(document).rows()
[('movies', 'shipped model, adapted', 2, 0.7, 0.02, 100), ('movies', 'SetFit', 2, 0.6, 0.03, 20)]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from personalize.errors import SchemaError, require

SENTIMENT_RIVALS = ("frozen + logistic regression", "frozen prototypes", "SetFit", "pooled transfer, zero-shot",
                    "pooled transfer + fine-tuning")
"""The real alternatives to the shipped sentiment model, as the benchmark names them."""
SHIPPED_ADAPTED, SHIPPED_ZERO_SHOT = "shipped model, adapted", "shipped model, zero-shot"

RECOMMEND_SHIPPED = "users on the engine (bayes)"
"""The shipped recommender's row (``pz.load("movielens")`` adapts users with the engine's bayes learner)."""
RECOMMEND_RATING_RIVALS = ("meta-learned (ours)", "mf (als)", "bias", "item mean", "global mean",
                           "fresh head on frozen text")
RECOMMEND_TOPK_RIVALS = ("meta-learned (ours)", "mf (als)", "bias", "item mean", "popularity")



def sentiment_comparison(document: Mapping[str, Any]) -> pl.DataFrame:
    """Accuracy by K per unseen domain: the shipped model (adapted and zero-shot) and its rivals.

    Columns: domain, method, K, accuracy, ci95, episodes; in the document's domain order, the
    shipped model first, then :data:`SENTIMENT_RIVALS`, K ascending.
    """
    results = _field(document, "results", "sentiment benchmark")
    names = {document.get("meta_method"): SHIPPED_ADAPTED, document.get("zero_shot_method"): SHIPPED_ZERO_SHOT}
    names |= {rival: rival for rival in SENTIMENT_RIVALS}
    rows = [(domain, shown, int(k), float(cell["mean"]), float(cell["ci95"]), int(cell["n"]))
            for domain, methods in results.items()
            for method, shown in names.items() if method in methods
            for k, cell in sorted(methods[method].items(), key=lambda item: int(item[0]))]
    return pl.DataFrame(rows, orient="row", schema={"domain": pl.Utf8, "method": pl.Utf8, "K": pl.Int64,
                                                    "accuracy": pl.Float64, "ci95": pl.Float64,
                                                    "episodes": pl.Int64})


def recommend_rating_curve(document: Mapping[str, Any]) -> pl.DataFrame:
    """Held-out MAE by the number of support ratings K (0 = cold start), mean over the splits.

    Columns: method, K, mae, ci95; the shipped recommender first, then :data:`RECOMMEND_RATING_RIVALS`.
    """
    curve = _field(_field(document, "summary", "recommendation benchmark"), "curve", "summary")
    rows = [(method, int(k), float(cell["mean"]), float(cell["ci95"]))
            for method in (RECOMMEND_SHIPPED, *RECOMMEND_RATING_RIVALS) if method in curve
            for k, cell in sorted(curve[method].items(), key=lambda item: int(item[0]))]
    return pl.DataFrame(rows, orient="row", schema={"method": pl.Utf8, "K": pl.Int64, "mae": pl.Float64,
                                                    "ci95": pl.Float64})


def recommend_topk(document: Mapping[str, Any]) -> pl.DataFrame:
    """Full-catalogue ranking quality per method and metric (recall@10, ndcg@10), mean over the splits.

    Columns: method, metric, value, ci95; the shipped recommender first, then :data:`RECOMMEND_TOPK_RIVALS`.
    """
    topk = _field(_field(document, "summary", "recommendation benchmark"), "topk", "summary")
    rows = [(method, metric, float(cell["mean"]), float(cell["ci95"]))
            for method in (RECOMMEND_SHIPPED, *RECOMMEND_TOPK_RIVALS) if method in topk
            for metric, cell in topk[method].items()]
    return pl.DataFrame(rows, orient="row", schema={"method": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64,
                                                    "ci95": pl.Float64})


def without_images(markdown: str) -> str:
    """A report's markdown without its image lines (the charts replace them where it is shown).

    >>> without_images("# Report\\n![plot](report.png)\\n| a |")
    '# Report\\n| a |'
    """
    return "\n".join(line for line in markdown.splitlines() if not line.lstrip().startswith("!["))


def _field(document: Mapping[str, Any], name: str, what: str) -> Any:
    require(isinstance(document, Mapping) and isinstance(document.get(name), Mapping),
            f"the {what} document has no {name!r} table: regenerate it with its benchmark script", SchemaError)
    return document[name]


__all__ = ["RECOMMEND_RATING_RIVALS", "RECOMMEND_SHIPPED", "RECOMMEND_TOPK_RIVALS", "SENTIMENT_RIVALS",
           "recommend_rating_curve", "recommend_topk", "sentiment_comparison", "without_images"]
