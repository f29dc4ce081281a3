"""How much accuracy each embedding holds for a domain, given many labels instead of a few.

A ceiling check for the few-shot sentiment goals, not a few-shot result: a logistic regression
(its C chosen by 5-fold cross-validation on the training snippets) is trained on n labelled
examples of one domain and scored on 1,000 other examples of it (500 per class, disjoint from the
training ones), for growing n. When even thousands of labels leave an embedding below a goal,
no choice of how to use 8 of them reaches it; the embedding itself must change.

Embeddings compared: the frozen encoder (mean-pooled MiniLM), the adapted encoder of each
classifier given (``--classifier``, repeatable; default the shipped ``sentiment`` and
``sentiment-pooled``), and any other frozen encoder given (``--encoder``, repeatable: a fetched
name such as ``mpnet-base`` or a folder). Writes a markdown table to ``--out``::

    python scripts/probe_sentiment_ceiling.py --domain movies
    personalize encoder fetch mpnet-base      # once, for the next line
    python scripts/probe_sentiment_ceiling.py --domain movies --encoder mpnet-base
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

import personalize as pz
from personalize.engine.batch import collate_tasks
from personalize.engine.inner_loop import expand_to_tasks
from personalize.errors import EpisodeError
from personalize.provenance import machine, portable_args
from personalize.sentiment_benchmark import DOMAINS, FrozenEmbeddings
from personalize.tasks import load_suite

Embed = Callable[[Sequence[str]], np.ndarray]


def adapted_embedding(classifier: pz.sentiment.SentimentClassifier, batch_size: int = 64) -> Embed:
    """Unit-length sentence embeddings through the classifier's trained adapters (no task adaptation)."""
    learner = classifier.learner
    params = expand_to_tasks(learner.init_params(), 1)  # the trained adapters, as one task

    def embed(texts: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            batch = collate_tasks(learner.encoder, [chunk], [[0] * len(chunk)], kind="classification")
            with torch.inference_mode(), learner.encoder.autocast(inference=True):
                parts.append(learner.task_features(params, batch)[0].float().cpu().numpy())
        vectors = np.concatenate(parts)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return embed


def probe(embed: Embed, train_texts: list[str], train_labels: np.ndarray, test_texts: list[str],
          test_labels: np.ndarray, sizes: Sequence[int], seed: int) -> dict[int, float]:
    """Test accuracy of a cross-validated logistic regression on the first n training examples, per n."""
    from sklearn.linear_model import LogisticRegressionCV

    train, test = embed(train_texts), embed(test_texts)
    scores = {}
    for n in sizes:
        model = LogisticRegressionCV(Cs=8, cv=5, max_iter=2000, random_state=seed).fit(train[:n], train_labels[:n])
        scores[n] = float(model.score(test, test_labels))
        print(f"  n={n:5d}: {scores[n]:.3f}", flush=True)
    return scores


def balanced_split(suite_name: str, domain: str, train_per_class: int, test_per_class: int,
                   seed: int) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Disjoint, class-balanced training and test examples of one domain, training ones shuffled."""
    suite = load_suite(suite_name)
    split = next(name for name in ("test", "val", "train") if domain in suite.splits()[name])
    episode = suite.split_pool(split).sample(domain, ways=suite.spec.ways, shots=train_per_class,
                                             query_per_class=test_per_class, rng=np.random.default_rng(seed))
    order = np.random.default_rng(seed).permutation(len(episode.support_texts))
    train_texts = [episode.support_texts[i] for i in order]
    return (train_texts, np.asarray(episode.support_labels)[order], list(episode.query_texts),
            np.asarray(episode.query_labels))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", default="movies", choices=[task for _, task in DOMAINS],
                        help="benchmark domain to probe (default movies)")
    parser.add_argument("--classifier", action="append", help="shipped name or folder (repeatable; default "
                                                              "sentiment and sentiment-pooled)")
    parser.add_argument("--encoder", action="append", default=[],
                        help="another frozen encoder to probe: fetched name or folder (repeatable)")
    parser.add_argument("--sizes", default="16,64,256,1000,2000", help="training examples (default 16,...,2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the folds (default 0)")
    parser.add_argument("--out", default="docs/sentiment-ceiling.md", help="markdown report")
    args = parser.parse_args(argv)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    if sizes[0] < 10:
        sys.exit("--sizes: each size must be >= 10 (5-fold cross-validation needs both classes in every fold)")
    suite_name = dict((task, suite) for suite, task in DOMAINS)[args.domain]
    started = time.perf_counter()
    try:
        train_texts, train_labels, test_texts, test_labels = balanced_split(
            suite_name, args.domain, (sizes[-1] + 1) // 2, 500, args.seed)
    except EpisodeError as error:
        sys.exit(f"{args.domain} is too small for --sizes up to {sizes[-1]} plus 500 test examples per class: {error}")

    names = args.classifier or ["sentiment", "sentiment-pooled"]
    classifiers = {name: pz.load(name) for name in names}
    embeddings: dict[str, Embed] = {"frozen MiniLM": FrozenEmbeddings(next(iter(classifiers.values())).encoder)}
    embeddings |= {f"{name} ({c.learner.name}) adapters": adapted_embedding(c) for name, c in classifiers.items()}
    embeddings |= {f"frozen {name}": FrozenEmbeddings(pz.load_encoder(name)) for name in args.encoder}
    table = {}
    for label, embed in embeddings.items():
        print(label, flush=True)
        table[label] = probe(embed, train_texts, train_labels, test_texts, test_labels, sizes, args.seed)

    encoder = next(iter(classifiers.values())).encoder
    lines = [
        f"# How much each embedding holds for `{args.domain}`",
        "",
        "Generated by `scripts/probe_sentiment_ceiling.py` (do not edit by hand):",
        "",
        f"    python scripts/probe_sentiment_ceiling.py {shlex.join(portable_args(sys.argv[1:]))}    # "
        f"{time.perf_counter() - started:.0f} s, {machine()}, {encoder.device}, {datetime.date.today()}",
        "",
        f"Not a few-shot result: a logistic regression (C by 5-fold cross-validation) trained on n labelled "
        f"`{args.domain}` examples (balanced, seed {args.seed}) and scored on 1,000 others (500 per class). "
        "Rows: the embedding it reads. A row that stays below a goal with thousands of labels cannot "
        "reach it from 8.",
        "",
        "| embedding | " + " | ".join(f"n = {n}" for n in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    lines += [f"| {label} | " + " | ".join(f"{scores[n]:.3f}" for n in sizes) + " |" for label, scores in table.items()]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
