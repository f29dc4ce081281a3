"""The benchmarks: each shipped model against its real alternatives as interactive charts, and every
report's full tables one click away (docs/, as the benchmark scripts wrote them)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import altair as alt  # noqa: E402
import polars as pl  # noqa: E402
import streamlit as st  # noqa: E402

import showcase  # noqa: E402
from personalize import benchmark_views as views  # noqa: E402

st.set_page_config(layout="wide")
st.title("Benchmarks")
st.caption("Click a method in a legend to pick it out; hover a point for its numbers. Bands are 95% confidence "
           "intervals over episodes (sentiment) or splits (recommendation).")
MORE_REPORTS = {"Sentiment: adaptation time": "sentiment-speed",
                "Sentiment: prototypes' adaptation time": "sentiment-speed-protonet",
                "Sentiment: many-label ceiling": "sentiment-ceiling", "Engine speed (CPU)": "engine-benchmark-cpu",
                "Batch adaptation at scale": "scale"}


def document(stem: str) -> dict | None:
    path = showcase.DOCS / f"{stem}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def full_report(stem: str, label: str = "Full report: every method and table") -> None:
    path = showcase.DOCS / f"{stem}.md"
    if not path.is_file():
        st.warning(f"{path.name} is missing: run the benchmark script that writes it.")
        return
    with st.expander(label):
        st.markdown(views.without_images(path.read_text(encoding="utf-8")))


def curve(frame: pl.DataFrame, y: str, y_title: str, tooltip: list[str]) -> alt.LayerChart:
    """Lines of ``y`` against K per method with 95% bands; the legend picks a method out."""
    frame = frame.with_columns(low=pl.col(y) - pl.col("ci95"), high=pl.col(y) + pl.col("ci95"))
    picked = alt.selection_point(fields=["method"], bind="legend")
    base = alt.Chart(alt.Data(values=frame.to_dicts())).encode(
        x=alt.X("K:O", title="support examples (K)"), color=alt.Color("method:N", sort=None, title="method"))
    band = base.mark_area().encode(y=alt.Y("low:Q", title=y_title, scale=alt.Scale(zero=False)), y2="high:Q",
                                   opacity=alt.condition(picked, alt.value(0.12), alt.value(0.02)))
    line = base.mark_line(point=True).encode(y=f"{y}:Q", tooltip=tooltip,
                                             opacity=alt.condition(picked, alt.value(1.0), alt.value(0.15)))
    line = line.add_params(picked)
    return (band + line).properties(height=380)


sentiment_tab, recommend_tab, more_tab = st.tabs(["Sentiment", "Recommendation", "Speed, ceiling, scale"])

with sentiment_tab:
    st.subheader("Cross-domain few-shot sentiment benchmark")
    sentiment = document("sentiment-benchmark")
    if sentiment is None:
        st.warning("docs/sentiment-benchmark.json is missing: run scripts/bench_sentiment.py.")
    else:
        table = views.sentiment_comparison(sentiment)
        domains = table["domain"].unique(maintain_order=True).to_list()
        domain = st.radio("Unseen domain", domains, horizontal=True, key="benchmark-domain")
        st.altair_chart(curve(table.filter(pl.col("domain") == domain), "accuracy", "query accuracy",
                              ["method:N", "K:O", alt.Tooltip("accuracy:Q", format=".3f"),
                               alt.Tooltip("ci95:Q", format=".3f"), "episodes:Q"]), width="stretch")
        st.caption(f"The shipped model: {sentiment.get('model', 'see the report').rstrip('.')}. "
                   f"Seed {sentiment.get('seed')}; "
                   "every method sees the same episodes.")
    full_report("sentiment-benchmark")

with recommend_tab:
    st.subheader("Cold-start recommendation benchmark (MovieLens, unseen users)")
    recommend = document("recommend-benchmark")
    if recommend is None:
        st.warning("docs/recommend-benchmark.json is missing: run scripts/bench_recommend.py.")
    else:
        left, right = st.columns(2)
        with left:
            st.markdown("**Rating error by support size** (lower is better)")
            st.altair_chart(curve(views.recommend_rating_curve(recommend), "mae", "held-out MAE",
                                  ["method:N", "K:O", alt.Tooltip("mae:Q", format=".3f"),
                                   alt.Tooltip("ci95:Q", format=".3f")]), width="stretch")
        with right:
            st.markdown("**Full-catalogue ranking** (higher is better)")
            bars = alt.Chart(alt.Data(values=views.recommend_topk(recommend).to_dicts())).mark_bar().encode(
                x=alt.X("value:Q", title="mean over splits"), y=alt.Y("method:N", sort=None, title=None),
                color=alt.Color("metric:N"), yOffset="metric:N",
                tooltip=["method:N", "metric:N", alt.Tooltip("value:Q", format=".3f"),
                         alt.Tooltip("ci95:Q", format=".3f")]).properties(height=380)
            st.altair_chart(bars, width="stretch")
        st.caption(f"`{recommend.get('command', '')}` on {recommend.get('machine', 'an unnamed machine')}, "
                   f"{recommend.get('date', '')}; splits {recommend.get('splits', '')}.")
    full_report("recommend-benchmark")

with more_tab:
    for title, stem in MORE_REPORTS.items():
        full_report(stem, label=title)
