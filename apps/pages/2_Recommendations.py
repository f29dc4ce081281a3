"""Per-user recommendations: an unseen MovieLens user, a brand-new user answering questions, a new film."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402
import streamlit as st  # noqa: E402

import showcase  # noqa: E402
from personalize.errors import PersonalizeError  # noqa: E402

st.set_page_config(layout="wide")
st.title("Per-user recommendations (MovieLens-100K)")
if not showcase.require_data():
    st.stop()

recommender = showcase.session_recommender()
titles = dict(zip(recommender.catalogue.ids, recommender.catalogue.titles))
EXISTING, NEW, ADD = "An unseen MovieLens user", "A new user (answer a few questions)", "Add a new film"
mode = st.radio("Be", [EXISTING, NEW, ADD], horizontal=True, key="mode")


def top_ten(user) -> pl.DataFrame:
    top = user.recommend(n=10)
    items = top["item_id"].to_list()
    return top.with_columns(pl.Series("why", showcase.reasons(user, items, titles)),
                            pl.col("rating").round(2), pl.col("std").round(2)).select(
        "rank", "title", "rating", "std", "why", "item_id")


if mode == EXISTING:
    episodes = showcase.test_user_episodes()
    user_id = st.selectbox("Test user (never seen in training)", list(episodes), key="user_id")
    episode = episodes[user_id]
    shots = st.slider("Ratings the model may see", 1, len(episode.support_items), min(10, len(episode.support_items)),
                      key="user_shots")
    history = pl.DataFrame({"item_id": episode.support_items[:shots], "rating": episode.support_ratings[:shots]})
    user = recommender.adapt(history)
    predicted, std = user.predict(list(episode.query_items), return_std=True)
    held_out = pl.DataFrame({"title": [titles[i] for i in episode.query_items], "their rating": episode.query_ratings,
                             "predicted": predicted.round(2), "± std": std.round(2)})
    mae = float(abs(held_out["their rating"] - held_out["predicted"]).mean())
    st.subheader(f"Their 10 held-out ratings, scored (MAE {mae:.2f})")
    st.dataframe(held_out, hide_index=True)
    liked = {int(i) for i, r in zip(episode.query_items, episode.query_ratings) if r >= 4}
    top = top_ten(user).with_columns(pl.col("item_id").is_in(list(liked)).alias("hit"))
    st.subheader(f"Top 10 from the whole catalogue ({int(top['hit'].sum())} held-out favourites among them)")
    st.dataframe(top.drop("item_id"), hide_index=True)

elif mode == NEW:
    answers: dict = st.session_state.setdefault("answers", {})
    skipped: set = st.session_state.setdefault("skipped", set())
    history = pl.DataFrame({"item_id": list(answers), "rating": [float(r) for r in answers.values()]},
                           schema={"item_id": pl.Int64, "rating": pl.Float64})
    candidates = [item for item in recommender.catalogue.ids if item not in skipped]
    asked = recommender.suggest_to_rate(history if answers else None, n=3, candidates=candidates)
    st.subheader("Rate these (the ones the model learns most from)")
    with st.form("questions"):
        picks = {}
        for item in asked["item_id"].to_list():
            picks[item] = st.select_slider(titles[item], ["not seen", 1, 2, 3, 4, 5], value="not seen",
                                           key=f"ask_{item}")
        submitted = st.form_submit_button("Save my ratings", type="primary")
    if submitted:
        answers.update({item: value for item, value in picks.items() if value != "not seen"})
        skipped.update(item for item, value in picks.items() if value == "not seen")  # never asked again
        st.rerun()
    if st.button("Start over", key="reset"):
        st.session_state["answers"], st.session_state["skipped"] = {}, set()
        st.rerun()
    user = recommender.adapt(history) if answers else None
    left, right = st.columns(2)
    with left:
        st.subheader(f"Your top 10 ({len(answers)} ratings so far)")
        if user is None:
            st.caption("Rate a film above to get recommendations made for you.")
        else:
            st.dataframe(top_ten(user).drop("item_id"), hide_index=True)
    with right:
        st.subheader("Most popular (for comparison)")
        st.dataframe(showcase.popular_titles(recommender, exclude=list(answers)), hide_index=True)

else:
    caps = st.empty()  # filled below, once this run's film (if any) is counted
    with st.form("new_film"):
        title = st.text_input("Title", max_chars=showcase.MAX_TITLE_CHARS, key="film_title")
        year = st.number_input("Year", 1900, 2030, 1998, key="film_year")
        genres = st.multiselect("Genres", showcase.GENRES, key="film_genres")
        added = st.form_submit_button("Add the film", type="primary")
    if added:
        try:
            text = showcase.new_movie_text(title, int(year), genres)
            item_id = showcase.add_film(recommender, title, text)
            st.session_state["added_film"] = item_id
        except (showcase.InputError, PersonalizeError) as error:
            st.error(str(error))
    caps.caption(f"Up to {showcase.MAX_ADDED_FILMS} new films a visit ({showcase.films_added(recommender)} added "
                 f"so far); titles up to {showcase.MAX_TITLE_CHARS} characters.")
    if "added_film" in st.session_state:
        item_id = st.session_state["added_film"]
        fans = showcase.who_would_like(recommender, item_id)
        st.subheader(f"Who would like “{titles.get(item_id, recommender.catalogue.titles[-1])}” (no one has rated it)")
        st.dataframe(fans, hide_index=True)
