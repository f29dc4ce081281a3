"""Cross-domain few-shot sentiment: adapt the shipped meta-learned model to an unseen domain."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402
import streamlit as st  # noqa: E402

import showcase  # noqa: E402
from personalize.errors import PersonalizeError  # noqa: E402

st.set_page_config(layout="wide")
st.title("Cross-domain few-shot sentiment")
if not showcase.require_data():
    st.stop()

OWN = "Your own sentences"
domain = st.selectbox("Domain", [*showcase.DOMAINS, OWN], key="domain")
model_name = st.selectbox("Model", list(showcase.MODELS), key="model")
classifier = showcase.sentiment_model(showcase.MODELS[model_name])

if domain == OWN:
    st.caption(f"Type a few sentences and their labels (any label names; two or more): up to "
               f"{showcase.MAX_OWN_EXAMPLES} rows, {showcase.MAX_TEXT_CHARS} characters a sentence and "
               f"{showcase.MAX_LABEL_CHARS} a label.")
    starter = pl.DataFrame({"text": ["The battery lasts all day", "Died after a week", "Great screen",
                                     "Keeps freezing"], "label": ["good", "bad", "good", "bad"]}).to_pandas()
    table = st.data_editor(starter, num_rows="dynamic", key="own_table")
else:
    shots = st.select_slider("Labelled examples per class (K)", [1, 2, 4, 8, 16], value=8, key="shots")
    seed = st.number_input("Episode (a different draw of examples)", 0, 999, 0, key="seed")

if st.button("Adapt", type="primary", key="adapt"):
    try:
        if domain == OWN:
            texts, labels = showcase.own_examples(table)
            model = classifier.adapt(texts, labels)
            st.session_state["sentiment"] = {"model": model, "domain": domain, "result": None}
        else:
            result, model = showcase.evaluate_domain(classifier, showcase.domain_episode(domain, shots, int(seed)))
            st.session_state["sentiment"] = {"model": model, "domain": domain, "result": result}
    except (showcase.InputError, PersonalizeError) as error:
        st.error(str(error))

state = st.session_state.get("sentiment")
if state and state["domain"] == domain:
    result = state["result"]
    if result is not None:
        left, middle, right = st.columns(3)
        left.metric("Before adapting (zero-shot)", f"{result.zero_shot:.1%}")
        middle.metric("After adapting", f"{result.adapted:.1%}", f"{result.adapted - result.zero_shot:+.1%}")
        right.metric("Frozen encoder, same examples", f"{result.frozen:.1%}")
        st.caption(f"Accuracy on {result.queries} held-out examples of the domain; adapted in "
                   f"{result.adapt_seconds * 1000:.0f} ms.")
    sentence = st.text_input(f"Try a sentence (up to {showcase.MAX_TEXT_CHARS} characters)", key="sentence")
    if sentence:
        try:
            text = showcase.checked_sentence(sentence)
            model = state["model"]
            probabilities = model.predict_proba([text])[0]
            best = int(probabilities.argmax())
            st.write(f"**{model.classes[best]}** with probability {probabilities[best]:.2f}")
        except (showcase.InputError, PersonalizeError) as error:
            st.error(str(error))
else:
    st.caption("Press Adapt to fit the model to this domain.")

if domain != OWN:
    curve = showcase.benchmark_curve(domain)
    if curve is not None:
        st.subheader("Accuracy vs K on this domain (benchmark, 100 episodes per cell)")
        st.line_chart(curve.pivot(on="method", index="K", values="accuracy").sort("K").to_pandas(), x="K")
