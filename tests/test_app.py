"""The Streamlit app: every page driven with ``streamlit.testing.v1.AppTest``.

The input checks of ``apps/showcase.py`` are fast unit tests. The page tests use the shipped models
and the real data (marked slow): widgets are set, the adaptation or recommendation runs, no page
raises, and the numbers on screen are the model's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

APPS = Path(__file__).resolve().parent.parent / "apps"
sys.path.insert(0, str(APPS))

import input_caps  # noqa: E402
import showcase  # noqa: E402


def app(page: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APPS / page), default_timeout=180)


# --- input checks (fast) ---------------------------------------------------------------------------------


def test_own_examples_are_checked_before_any_model_sees_them() -> None:
    good = pl.DataFrame({"text": [" Lovely ", "Awful", None, ""], "label": ["pos", "neg", None, "pos"]})
    assert showcase.own_examples(good) == (["Lovely", "Awful"], ["pos", "neg"])
    assert showcase.own_examples(good.to_pandas()) == (["Lovely", "Awful"], ["pos", "neg"])
    cases = {
        "at least one sentence": pl.DataFrame({"text": ["", None], "label": ["a", "b"]}),
        "two different labels": pl.DataFrame({"text": ["a", "b"], "label": ["x", "x"]}),
        "needs a label": pl.DataFrame({"text": ["a", "b"], "label": ["x", None]}),
        "longer than 500": pl.DataFrame({"text": ["a" * 501, "b"], "label": ["x", "y"]}),
        "At most 200": pl.DataFrame({"text": [f"t{i}" for i in range(201)], "label": ["x", "y"] * 100 + ["x"]}),
    }
    for message, frame in cases.items():
        with pytest.raises(showcase.InputError, match=message):
            showcase.own_examples(frame)


def test_typed_sentences_and_new_films_are_checked() -> None:
    assert showcase.checked_sentence("  fine  ") == "fine"
    for bad, message in (("", "Type a sentence"), ("   ", "Type a sentence"), ("x" * 501, "under 500")):
        with pytest.raises(showcase.InputError, match=message):
            showcase.checked_sentence(bad)
    assert showcase.new_movie_text(" Heat ", 1995, ["Crime", "Thriller"]) == "Heat (1995). Genres: Crime, Thriller."
    for args, message in ((("", 1995, ["Crime"]), "title"), (("Heat", 1995, []), "genre"),
                          (("x" * 121, 1995, ["Crime"]), "under 120")):
        with pytest.raises(showcase.InputError, match=message):
            showcase.new_movie_text(*args)


def test_the_caps_and_their_checks_import_without_streamlit() -> None:
    import subprocess

    code = ("import sys; sys.modules['streamlit'] = None; sys.path.insert(0, sys.argv[1]); import input_caps; "
            "print(input_caps.MAX_OWN_EXAMPLES, input_caps.MAX_TEXT_CHARS)")
    done = subprocess.run([sys.executable, "-c", code, str(APPS)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(input_caps.MAX_OWN_EXAMPLES), str(input_caps.MAX_TEXT_CHARS)]
    assert showcase.own_examples is input_caps.own_examples and showcase.InputError is input_caps.InputError


def test_the_caps_hold_at_their_limits() -> None:
    caps = input_caps
    most = pl.DataFrame({"text": ["x" * caps.MAX_TEXT_CHARS] * caps.MAX_OWN_EXAMPLES,
                         "label": ["a" * caps.MAX_LABEL_CHARS, "b"] * (caps.MAX_OWN_EXAMPLES // 2)})
    assert len(caps.own_examples(most)[0]) == caps.MAX_OWN_EXAMPLES  # exactly at every cap: accepted
    with_blank_rows = pl.concat([most.head(2), pl.DataFrame({"text": [None] * caps.MAX_OWN_EXAMPLES,
                                                             "label": [None] * caps.MAX_OWN_EXAMPLES},
                                                            schema=most.schema)])
    refused = {  # one past each cap
        "202 rows": with_blank_rows,  # blank rows count: a pasted table of a million empty rows is refused
        "labels longer than 40": most.with_columns(pl.lit("l" * (caps.MAX_LABEL_CHARS + 1)).alias("label")),
    }
    for message, frame in refused.items():
        with pytest.raises(caps.InputError, match=message):
            caps.own_examples(frame)
    assert caps.checked_sentence("x" * caps.MAX_TEXT_CHARS) == "x" * caps.MAX_TEXT_CHARS
    assert caps.new_movie_text("t" * caps.MAX_TITLE_CHARS, None, ["Drama"]).startswith("t" * caps.MAX_TITLE_CHARS)
    caps.check_room_for_film(caps.MAX_ADDED_FILMS - 1)
    with pytest.raises(caps.InputError, match="added 20 films this visit"):
        caps.check_room_for_film(caps.MAX_ADDED_FILMS)


def test_the_pages_show_the_caps_they_enforce() -> None:
    sentiment = (APPS / "pages" / "1_Sentiment.py").read_text(encoding="utf-8")
    recommendations = (APPS / "pages" / "2_Recommendations.py").read_text(encoding="utf-8")
    for cap in ("MAX_OWN_EXAMPLES", "MAX_TEXT_CHARS", "MAX_LABEL_CHARS"):
        assert f"{{showcase.{cap}}}" in sentiment
    for cap in ("MAX_ADDED_FILMS", "MAX_TITLE_CHARS"):
        assert f"{{showcase.{cap}}}" in recommendations


# --- pages (slow: shipped models, real data) -------------------------------------------------------------


@pytest.mark.slow
def test_home_page_reports_ready(real_data) -> None:
    at = app("Home.py").run()
    assert not at.exception
    assert any("ready" in element.value for element in at.success)


@pytest.mark.slow
def test_sentiment_page_adapts_and_shows_the_models_numbers(real_data) -> None:
    at = app("pages/1_Sentiment.py").run()
    assert not at.exception
    at.selectbox(key="domain").set_value("Movies (Rotten Tomatoes, unseen)")
    at.select_slider(key="shots").set_value(4)
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert set(metrics) == {"Before adapting (zero-shot)", "After adapting", "Frozen encoder, same examples"}
    # The numbers on screen are the model's on the same seeded episode.
    classifier = showcase.sentiment_model("sentiment")
    result, model = showcase.evaluate_domain(classifier, showcase.domain_episode("Movies (Rotten Tomatoes, unseen)",
                                                                                 4, 0))
    assert metrics["After adapting"] == f"{result.adapted:.1%}"
    assert metrics["Before adapting (zero-shot)"] == f"{result.zero_shot:.1%}"
    at.text_input(key="sentence").input("A tedious, joyless mess").run()
    probabilities = model.predict_proba(["A tedious, joyless mess"])[0]
    expected = f"**{model.classes[int(probabilities.argmax())]}** with probability {probabilities.max():.2f}"
    assert expected in [element.value for element in at.markdown]
    assert len(at.get("vega_lite_chart")) == 1  # the accuracy-vs-K chart from the benchmark


@pytest.mark.slow
def test_sentiment_page_own_sentences_and_bad_input(real_data) -> None:
    at = app("pages/1_Sentiment.py").run()
    at.selectbox(key="domain").set_value("Your own sentences").run()
    at.button(key="adapt").click().run()  # the starter table: 4 sentences, 2 labels
    assert not at.exception and not at.error
    at.text_input(key="sentence").input("Keeps crashing every hour").run()
    assert any(element.value.startswith("**bad**") for element in at.markdown)
    at.text_input(key="sentence").input("x" * 600).run()
    assert not at.exception and any("under 500" in element.value for element in at.error)


@pytest.mark.slow
def test_recommendations_page_scores_an_unseen_user(real_data) -> None:
    at = app("pages/2_Recommendations.py").run()
    assert not at.exception and not at.error
    user_id = at.selectbox(key="user_id").value
    shots = at.slider(key="user_shots").value
    held_out, top = (frame.value for frame in at.dataframe)
    episode = showcase.test_user_episodes()[user_id]
    user = showcase.recommender().adapt(pl.DataFrame({"item_id": episode.support_items[:shots],
                                                      "rating": episode.support_ratings[:shots]}))
    np.testing.assert_allclose(held_out["predicted"].to_numpy(),
                               user.predict(list(episode.query_items)).round(2), atol=1e-9)
    assert top["title"].tolist() == user.recommend(n=10)["title"].to_list()
    assert top["hit"].dtype == bool and list(top["rank"]) == list(range(1, 11))


@pytest.mark.slow
def test_recommendations_page_new_user_answers_questions(real_data) -> None:
    at = app("pages/2_Recommendations.py").run()
    at.radio(key="mode").set_value("A new user (answer a few questions)").run()
    assert not at.exception
    first_question = at.select_slider[0]
    asked = first_question.label
    first_question.set_value(5)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and not at.error
    assert any("Your top 10 (1 ratings so far)" in element.value for element in at.subheader)
    top, popular = (frame.value for frame in at.dataframe)
    assert len(top) == 10 and asked not in top["title"].tolist() and len(popular) == 10
    assert all(isinstance(reason, str) and reason for reason in top["why"])
    assert at.select_slider[0].label != asked  # the next questions follow


@pytest.mark.slow
def test_recommendations_page_adds_a_film_and_finds_its_fans(real_data) -> None:
    at = app("pages/2_Recommendations.py").run()
    at.radio(key="mode").set_value("Add a new film").run()
    at.button[0].click().run()  # no title, no genre
    assert any("title" in element.value for element in at.error)
    at.text_input(key="film_title").input("Galaxy Raiders")
    at.multiselect(key="film_genres").set_value(["Sci-Fi", "Action"])
    at.button[0].click().run()
    assert not at.exception and not at.error
    fans = at.dataframe[0].value
    assert len(fans) == 5 and (np.diff(fans["predicted rating"].to_numpy()) <= 0).all()
    assert "recommender" in at.session_state and "Galaxy Raiders" in at.session_state["recommender"].catalogue.titles
    assert "Galaxy Raiders" not in showcase.recommender().catalogue.titles  # the shared model is untouched


@pytest.mark.slow
def test_benchmarks_page_shows_every_report() -> None:
    at = app("pages/3_Benchmarks.py").run()
    assert not at.exception and not at.warning
    assert len(at.get("vega_lite_chart")) == 3  # sentiment accuracy by K; recommendation MAE by K and ranking
    assert not at.get("image")  # the charts replace the reports' static plots
    text = " ".join(element.value for element in at.markdown)  # the full reports, one click away
    assert "Recommendation benchmark" in text and "MeLU protocol" in text and "few-shot sentiment benchmark" in text
    assert text.count("Adaptation time, side by side") == 2 and "How much each embedding holds" in text
    assert "![" not in text  # no image link left to break
    assert len(at.expander) == 7 and [radio.label for radio in at.radio] == ["Unseen domain"]
    first = at.radio[0].options[0]
    chosen = at.radio[0].set_value("movies").run()  # another domain redraws the chart without error
    assert not chosen.exception and chosen.radio[0].value == "movies" and first != "movies"


@pytest.mark.slow
def test_recommendations_page_never_asks_about_a_film_the_user_has_not_seen_again(real_data) -> None:
    at = app("pages/2_Recommendations.py").run()
    at.radio(key="mode").set_value("A new user (answer a few questions)").run()
    first = [question.label for question in at.select_slider]
    at.button[0].click().run()  # all three left at "not seen"
    assert not at.exception and at.session_state["answers"] == {}
    second = [question.label for question in at.select_slider]
    assert len(second) == 3 and not set(first) & set(second)


@pytest.mark.slow
def test_sentiment_page_with_the_prototype_model_adapts_and_the_default_takes_a_third_class(real_data) -> None:
    at = app("pages/1_Sentiment.py").run()
    at.selectbox(key="model").set_value("meta-learned, prototypes only (protonet; fastest)")
    at.selectbox(key="domain").set_value("Skirts (clothing, unseen)").run()
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    adapted = next(metric for metric in at.metric if metric.label == "After adapting")
    assert 0.6 < float(adapted.value.rstrip("%")) / 100 <= 1.0
    at.selectbox(key="model").set_value(list(showcase.MODELS)[0])  # the default: Meta-SGD for two classes
    at.selectbox(key="domain").set_value("Your own sentences").run()
    # the starter table has two labels; a third makes the default hand the task to its prototypes
    at.session_state["own_table"] = {"added_rows": [{"text": "It is fine", "label": "meh"}],
                                     "edited_rows": {}, "deleted_rows": []}
    at.button(key="adapt").click().run()
    assert not at.exception and not at.error
    at.text_input(key="sentence").input("It is fine").run()
    assert any(element.value.startswith("**meh**") for element in at.markdown)
