"""personalize: the interactive demo. Run with ``streamlit run apps/Home.py`` (``make demo`` does)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

import showcase  # noqa: E402

st.set_page_config(page_title="personalize", page_icon="🎯", layout="wide")
st.title("personalize: meta-learned personalization")
st.markdown(
    "Every user or domain is a **task** with a handful of examples. A frozen MiniLM encoder reads the "
    "text; what was meta-learned across many tasks lets a new one be fitted in a fraction of a second, "
    "on this CPU.\n\n"
    "- **Sentiment**: adapt to a domain never seen in training (unseen clothing classes, movie "
    "reviews, or your own sentences) from a few labelled examples.\n"
    "- **Recommendations**: be a MovieLens user the model has never seen, or a brand-new one who "
    "answers a few questions; add a film by its title and genres.\n"
    "- **Benchmarks**: the tables and plots the benchmark scripts wrote."
)
if showcase.require_data():
    st.success("Data and shipped models are ready: pick a page in the sidebar.")
