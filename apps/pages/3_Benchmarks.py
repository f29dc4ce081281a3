"""The benchmark tables and plots, as the scripts wrote them into docs/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

import showcase  # noqa: E402

st.set_page_config(layout="wide")
st.title("Benchmarks")
REPORTS = {"Sentiment": "sentiment-benchmark", "Sentiment: adaptation time": "sentiment-speed",
           "Sentiment: prototypes' adaptation time": "sentiment-speed-protonet",
           "Sentiment: many-label ceiling": "sentiment-ceiling", "Recommendation": "recommend-benchmark",
           "Engine speed (CPU)": "engine-benchmark-cpu"}
for tab, stem in zip(st.tabs(list(REPORTS)), REPORTS.values()):
    with tab:
        report = showcase.DOCS / f"{stem}.md"
        if not report.is_file():
            st.warning(f"{report.name} is missing: run the benchmark script that writes it.")
            continue
        plot = showcase.DOCS / f"{stem}.png"
        if plot.is_file():
            st.image(str(plot))
        st.markdown(report.read_text(encoding="utf-8"))
