"""The curated benchmark tables the app charts: read from the reports' JSON, nothing recomputed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalize import benchmark_views as views
from personalize.errors import SchemaError

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def sentiment() -> dict:
    return json.loads((DOCS / "sentiment-benchmark.json").read_text())


@pytest.fixture(scope="module")
def recommend() -> dict:
    return json.loads((DOCS / "recommend-benchmark.json").read_text())


def test_sentiment_comparison_is_the_shipped_model_against_its_rivals_on_every_domain(sentiment) -> None:
    table = views.sentiment_comparison(sentiment)
    methods = set(table["method"])
    assert {views.SHIPPED_ADAPTED, views.SHIPPED_ZERO_SHOT, "SetFit", "frozen + logistic regression"} <= methods
    assert methods <= {views.SHIPPED_ADAPTED, views.SHIPPED_ZERO_SHOT, *views.SENTIMENT_RIVALS}
    assert table["domain"].unique(maintain_order=True).to_list() == list(sentiment["results"])
    for row in table.iter_rows(named=True):  # every number is the report's own cell
        name = {views.SHIPPED_ADAPTED: sentiment["meta_method"],
                views.SHIPPED_ZERO_SHOT: sentiment["zero_shot_method"]}.get(row["method"], row["method"])
        cell = sentiment["results"][row["domain"]][name][str(row["K"])]
        assert (row["accuracy"], row["ci95"], row["episodes"]) == (cell["mean"], cell["ci95"], cell["n"])
    movies = table.filter(table["domain"] == "movies", table["method"] == views.SHIPPED_ADAPTED)
    assert movies["K"].to_list() == sorted(movies["K"].to_list()) and len(movies) >= 3


def test_recommend_tables_put_the_shipped_recommender_first_with_the_reports_numbers(recommend) -> None:
    curve = views.recommend_rating_curve(recommend)
    assert curve["method"][0] == views.RECOMMEND_SHIPPED and {"mf (als)", "bias"} <= set(curve["method"])
    shipped = curve.filter(curve["method"] == views.RECOMMEND_SHIPPED)
    reported = recommend["summary"]["curve"][views.RECOMMEND_SHIPPED]
    assert shipped["mae"].to_list() == [reported[k]["mean"] for k in sorted(reported, key=int)]
    topk = views.recommend_topk(recommend)
    assert topk["method"][0] == views.RECOMMEND_SHIPPED and "popularity" in set(topk["method"])
    assert set(topk["metric"]) == {"recall@10", "ndcg@10"}
    popularity = topk.filter(topk["method"] == "popularity", topk["metric"] == "ndcg@10")["value"].item()
    assert popularity == recommend["summary"]["topk"]["popularity"]["ndcg@10"]["mean"]


def test_a_document_without_its_tables_is_refused_naming_them() -> None:
    with pytest.raises(SchemaError, match="has no 'results' table"):
        views.sentiment_comparison({"runs": []})
    with pytest.raises(SchemaError, match="has no 'curve' table"):
        views.recommend_rating_curve({"summary": {}})
