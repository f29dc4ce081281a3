"""FewShotClassifier: the scikit-learn estimator over the meta-learned classifier.

Fast tests run on the tiny random encoder (a prototype learner, and a SentimentClassifier built on
it); the shipped model is exercised by one slow test (the README's snippet).

scikit-learn's own ``estimator_checks`` build numeric feature matrices (``make_blobs``); a text
classifier has no feature matrix, so the checks that fit on numbers do not apply, and sklearn itself
skips them for an estimator tagged ``two_d_array=False, string=True``. The ones run below need no
numeric fit: the parameter API (construction, get/set_params, clone, repr, tags, mixin order), the
NotFittedError before fit, and the refusal of numeric X (1-D), continuous y and NaN/inf y. The
behaviours the numeric checks test (idempotent fit, fit returns self, subset and order invariance,
predict leaves the estimator unchanged, fit sets only trailing-underscore attributes, pickling,
one class refused) are tested here on texts.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402

from personalize import estimator as estimator_module  # noqa: E402
from personalize.encoder import tiny_encoder  # noqa: E402
from personalize.engine.config import HeadConfig  # noqa: E402
from personalize.errors import ConfigError  # noqa: E402
from personalize.estimator import FewShotClassifier, clear_model_cache  # noqa: E402
from personalize.learners import create_learner  # noqa: E402
from personalize.sentiment import SentimentClassifier  # noqa: E402

GOOD = ["good", "great", "lovely", "nice", "superb", "fine"]
BAD = ["bad", "awful", "poor", "ugly", "broken", "sad"]
TEXTS = [text for i in range(6) for text in (f"{GOOD[i]} {GOOD[(i + 1) % 6]}", f"{BAD[i]} {BAD[(i + 2) % 6]}")]
LABELS = ["positive", "negative"] * 6


def lowercase(texts):
    return [text.lower() for text in texts]


@pytest.fixture(scope="module")
def learner():
    return create_learner("protonet", tiny_encoder())


@pytest.fixture(scope="module")
def classifier(learner):
    return SentimentClassifier.build(learner, ["good great", "bad awful"], [1, 0])


@pytest.fixture()
def fitted(learner) -> FewShotClassifier:
    return FewShotClassifier(learner).fit(TEXTS, LABELS)


# --- the estimator API ------------------------------------------------------------------------------


def test_fit_predict_and_proba_follow_sorted_classes(fitted) -> None:
    assert fitted.classes_.tolist() == ["negative", "positive"]
    probabilities = fitted.predict_proba(TEXTS)
    assert probabilities.shape == (12, 2) and np.allclose(probabilities.sum(1), 1)
    assert fitted.predict(TEXTS).tolist() == fitted.classes_[probabilities.argmax(1)].tolist()
    assert fitted.model_.classes == ("negative", "positive")
    assert 0.0 <= fitted.score(TEXTS, LABELS) <= 1.0


def test_int_labels_and_more_than_two_classes(learner) -> None:
    labels = np.array([2, 0, 1] * 4)
    model = FewShotClassifier(learner).fit(np.array(TEXTS), labels)
    assert model.classes_.tolist() == [0, 1, 2] and model.classes_.dtype.kind == "i"
    assert set(model.predict(TEXTS).tolist()) <= {0, 1, 2}


def test_lists_arrays_and_series_of_texts_give_the_same_predictions(fitted) -> None:
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    expected = fitted.predict_proba(TEXTS)
    inputs = [tuple(TEXTS), np.array(TEXTS), np.array(TEXTS, dtype=object), np.array(TEXTS)[:, None],
              pd.Series(TEXTS, index=range(100, 112)), pd.DataFrame({"text": TEXTS}), pl.Series(TEXTS)]
    for given in inputs:
        assert np.allclose(fitted.predict_proba(given), expected, atol=1e-6), type(given)
    series_fit = FewShotClassifier(fitted.model).fit(pd.Series(TEXTS, index=range(50, 62)), pd.Series(LABELS))
    assert np.allclose(series_fit.predict_proba(TEXTS), expected, atol=1e-6)


def test_fit_is_idempotent_and_returns_self(learner) -> None:
    model = FewShotClassifier(learner)
    assert model.fit(TEXTS, LABELS) is model
    first = model.predict_proba(TEXTS)
    model.fit(TEXTS[:4], LABELS[:4]).fit(TEXTS, LABELS)  # a refit forgets the earlier fit
    assert np.allclose(model.predict_proba(TEXTS), first, atol=1e-6)


def test_predictions_do_not_depend_on_batch_subset_or_order(fitted) -> None:
    whole = fitted.predict_proba(TEXTS)
    one_by_one = np.concatenate([fitted.predict_proba([text]) for text in TEXTS])
    assert np.allclose(one_by_one, whole, atol=1e-5)
    order = np.random.default_rng(0).permutation(len(TEXTS))
    assert np.allclose(fitted.predict_proba([TEXTS[i] for i in order]), whole[order], atol=1e-5)


def test_fit_sets_only_trailing_underscore_attributes_and_predict_changes_nothing(learner) -> None:
    model = FewShotClassifier(learner, prior_strength=None)
    before = dict(vars(model))
    model.fit(TEXTS, LABELS)
    added = set(vars(model)) - set(before)
    assert added == {"model_", "classes_"}
    assert all(vars(model)[name] is value for name, value in before.items())  # parameters untouched
    state = dict(vars(model))
    model.predict(TEXTS), model.predict_proba(TEXTS)
    assert vars(model) == state


def test_a_fitted_estimator_pickles(fitted) -> None:
    copy = pickle.loads(pickle.dumps(fitted))
    assert copy.predict(TEXTS).tolist() == fitted.predict(TEXTS).tolist()
    assert np.allclose(copy.predict_proba(TEXTS), fitted.predict_proba(TEXTS), atol=1e-6)


def test_get_set_params_and_clone(classifier) -> None:
    model = FewShotClassifier("sentiment", prior_strength=2.0)
    assert model.get_params() == {"model": "sentiment", "prior_strength": 2.0, "precision": None, "device": "auto"}
    assert model.set_params(model=classifier, prior_strength=None) is model and model.model is classifier
    assert clone(model).get_params()["prior_strength"] is None


def test_prior_strength_is_a_real_hyperparameter(classifier) -> None:
    """A huge prior turns the adapted prototypes into the zero-shot ones: the parameter is applied."""
    zero_shot = classifier.zero_shot().predict_proba(TEXTS)
    own = FewShotClassifier(classifier, prior_strength=0.0).fit(TEXTS, LABELS).predict_proba(TEXTS)
    prior = FewShotClassifier(classifier, prior_strength=1e9).fit(TEXTS, LABELS).predict_proba(TEXTS)
    assert np.allclose(prior, zero_shot, atol=1e-4)
    assert not np.allclose(own, zero_shot, atol=1e-4)


# --- model selection --------------------------------------------------------------------------------


def test_cross_val_score_in_a_pipeline(learner) -> None:
    pipeline = Pipeline([("lower", FunctionTransformer(lowercase)), ("clf", FewShotClassifier(learner))])
    scores = cross_val_score(pipeline, TEXTS, LABELS, cv=3, error_score="raise")
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_grid_search_over_model_and_prior_strength(learner, classifier) -> None:
    pipeline = Pipeline([("lower", FunctionTransformer(lowercase)), ("clf", FewShotClassifier(classifier))])
    grid = [{"clf__model": [classifier], "clf__prior_strength": [0.0, 4.0]}, {"clf__model": [learner]}]
    search = GridSearchCV(pipeline, grid, cv=2, error_score="raise").fit(TEXTS, LABELS)
    assert len(search.cv_results_["params"]) == 3
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_params_
    assert best["clf__model"].__class__ in (SentimentClassifier, type(learner))
    assert set(search.predict(TEXTS).tolist()) <= {"negative", "positive"}
    assert search.best_estimator_[-1].classes_.tolist() == ["negative", "positive"]


def test_models_by_name_load_lazily_once_for_every_clone(monkeypatch, classifier) -> None:
    calls = []

    def fake_load(name, device="auto", precision=None):
        calls.append((name, device, precision))
        return classifier

    monkeypatch.setattr("personalize.loading.load", fake_load)
    clear_model_cache()
    try:
        model = FewShotClassifier("sentiment")
        copies = [clone(model) for _ in range(3)]
        assert calls == []  # constructing and cloning load nothing
        for copy in copies:
            copy.fit(TEXTS, LABELS)
        assert calls == [("sentiment", "auto", None)]
        FewShotClassifier("sentiment", precision="float32").fit(TEXTS, LABELS)
        assert calls[-1] == ("sentiment", "auto", "float32") and len(calls) == 2
    finally:
        clear_model_cache()


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("X", "y", "message"), [
    ("love it", ["pos"], "X is a single string; pass a list of texts"),
    (None, LABELS, "X is None"),
    (TEXTS, None, "y is None"),
    (TEXTS, "positive", "y is a single string"),
    (TEXTS[:5], LABELS[:6], "X has 5 texts but y has 6 labels"),
    (TEXTS[:3], ["positive"] * 3, r"y has only one class \('positive'\)"),
    ([], [], "X is empty"),
    (["good", ""], ["a", "b"], r"X\[1\] is an empty text"),
    (["good", 3.0], ["a", "b"], r"X\[1\] is float \(3.0\), not a text"),
    (np.array([["a", "b"], ["c", "d"]]), ["a", "b"], r"X must hold one text per sample \(1-D\), got shape \(2, 2\)"),
    (TEXTS[:2], [0.5, 1.5], r"Unknown label type: y\[0\] is float"),
    (TEXTS[:2], [True, False], r"y\[0\] is bool"),
    (TEXTS[:2], ["a", 1], "y mixes str and int labels"),
])
def test_bad_input_is_refused_naming_the_field(learner, X, y, message) -> None:
    with pytest.raises(ConfigError, match=message):
        FewShotClassifier(learner).fit(X, y)


def test_predict_checks_its_input_and_that_it_was_fitted(learner, fitted) -> None:
    with pytest.raises(NotFittedError):
        FewShotClassifier(learner).predict(TEXTS)
    with pytest.raises(ConfigError, match="X is a single string"):
        fitted.predict("good")
    with pytest.raises(ConfigError, match=r"X\[0\] is NoneType"):
        fitted.predict_proba([None])


def test_model_and_setting_mistakes_are_refused(learner, classifier) -> None:
    with pytest.raises(ConfigError, match="model must be a shipped classifier name.*got int"):
        FewShotClassifier(3).fit(TEXTS, LABELS)
    with pytest.raises(ConfigError, match="prior_strength applies to a classifier.*protonet"):
        FewShotClassifier(learner, prior_strength=1.0).fit(TEXTS, LABELS)
    with pytest.raises(ConfigError, match="precision and device apply to a model loaded by name"):
        FewShotClassifier(classifier, precision="float32").fit(TEXTS, LABELS)
    regression = create_learner("bayes", learner.encoder, head=HeadConfig(kind="regression"))
    with pytest.raises(ConfigError, match="or a classification MetaLearner; got BayesianHead"):
        FewShotClassifier(regression).fit(TEXTS, LABELS)


# --- scikit-learn's estimator checks that apply to text input ----------------------------------------------

APPLICABLE_CHECKS = [
    "check_no_attributes_set_in_init", "check_parameters_default_constructible", "check_get_params_invariance",
    "check_set_params", "check_estimator_cloneable", "check_estimator_repr",
    "check_do_not_raise_errors_in_init_or_set_params", "check_mixin_order", "check_valid_tag_types",
    "check_estimator_tags_renamed", "check_estimators_unfitted", "check_fit1d",
    "check_classifiers_regression_target", "check_supervised_y_no_nan",
]


@pytest.mark.parametrize("check", APPLICABLE_CHECKS)
def test_sklearn_estimator_checks_that_apply_to_text(check, learner) -> None:
    getattr(estimator_checks, check)("FewShotClassifier", FewShotClassifier(learner))


def test_sklearn_skips_its_numeric_checks_for_a_text_estimator(learner) -> None:
    tags = FewShotClassifier(learner).__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    with pytest.warns(UserWarning, match="Can't test estimator"):
        checks = list(estimator_checks._yield_all_checks(FewShotClassifier(learner), legacy=True))
    assert checks == []


def test_module_docstring_mentions_the_extra() -> None:
    assert "pip install personalize[sklearn]" in estimator_module.__doc__


# --- the shipped model ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_readme_snippet_with_the_shipped_model() -> None:
    texts = ["Runs small and the zip broke", "So soft, I live in it", "Fell apart after one wash",
             "Perfect fit, love the colour", "Cheap fabric, returned it", "My favourite jacket ever"] * 2
    labels = ["bad", "good", "bad", "good", "bad", "good"] * 2
    pipeline = Pipeline([("lower", FunctionTransformer(lowercase)), ("clf", FewShotClassifier("sentiment"))])
    scores = cross_val_score(pipeline, texts, labels, cv=3)
    assert scores.mean() >= 0.8
    search = GridSearchCV(pipeline, {"clf__model": ["sentiment", "sentiment-protonet"]}, cv=3).fit(texts, labels)
    assert search.predict(["The seams ripped on day one"]).tolist() == ["bad"]
