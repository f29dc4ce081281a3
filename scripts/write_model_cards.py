"""Write the model card (README.md) of every shipped model, with the figures of its benchmark report.

    python scripts/write_model_cards.py

Reads docs/sentiment-benchmark.json and docs/recommend-benchmark.json (written by
scripts/bench_sentiment.py and scripts/bench_recommend.py) and writes README.md into each folder of
personalize/pretrained/. Rerun it after regenerating a report. Only the cards change; the models'
files and checksums are untouched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import personalize as pz
from personalize.hub import write_model_card
from personalize.loading import SHIPPED

DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOTS = ("2", "8", "16")

# Shipped sentiment model -> its method name in docs/sentiment-benchmark.json, and its zero-shot row.
SENTIMENT_METHODS = {
    "sentiment": ("meta meta-sgd, 1 step", "meta meta-sgd, 1 step, zero-shot"),
    "sentiment-protonet": ("meta protonet", "meta protonet, zero-shot"),
    "sentiment-pooled": ("pooled transfer + fine-tuning", "pooled transfer, zero-shot"),
}
RECOMMENDER_METHOD = "users on the engine (bayes)"


def sentiment_results(report: dict, method: str, zero_shot: str) -> dict[str, str]:
    """Mean query accuracy ± 95% interval per unseen domain and K, and zero-shot at K=8's episodes."""
    results = {}
    for domain, methods in report["results"].items():
        for shots in SHOTS:
            cell = methods.get(method, {}).get(shots)
            if cell is not None:
                interval = f"{cell['mean']:.3f} ± {cell['ci95']:.3f} ({cell['n']} episodes)"
                results[f"{domain}, {shots}-shot accuracy"] = interval
        cell = methods.get(zero_shot, {}).get("8")
        if cell is not None:
            results[f"{domain}, zero-shot accuracy"] = f"{cell['mean']:.3f} ± {cell['ci95']:.3f}"
    results["source"] = f"docs/sentiment-benchmark.md, seed {report['seed']}"
    return results


def recommender_results(report: dict) -> dict[str, str]:
    """Mean MAE and NDCG over the report's user splits, for the shipped model and its baselines."""
    summary = report["summary"]
    results = {}
    for method in (RECOMMENDER_METHOD, "mf (als)", "bias"):
        results[f"{method}: MAE (MeLU protocol)"] = f"{summary['protocol'][method]['mae']['mean']:.3f}"
    for method in (RECOMMENDER_METHOD, "mf (als)", "popularity"):
        results[f"{method}: NDCG@10 (full catalogue)"] = f"{summary['topk'][method]['ndcg@10']['mean']:.3f}"
    results["source"] = f"docs/recommend-benchmark.md, `{report['command']}`, {report['machine']}"
    return results


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    sentiment = json.loads((DOCS / "sentiment-benchmark.json").read_text(encoding="utf-8"))
    recommend = json.loads((DOCS / "recommend-benchmark.json").read_text(encoding="utf-8"))
    for name, folder in SHIPPED.items():
        model = pz.load(name)
        results = (recommender_results(recommend) if name == "movielens"
                   else sentiment_results(sentiment, *SENTIMENT_METHODS[name]))
        card = write_model_card(folder, model.card_facts(), results)
        print(f"{name}: {card.relative_to(DOCS.parent)}")


if __name__ == "__main__":
    main()
