"""``FewShotClassifier``: the meta-learned few-shot classifier as a scikit-learn estimator.

``fit(texts, labels)`` adapts a meta-learned initialization (the shipped ``"sentiment"`` model by
default) to the given examples, a few per class; ``predict`` and ``predict_proba`` then work in the
caller's label space, with ``classes_`` sorted as scikit-learn does. So it goes into a ``Pipeline``,
``cross_val_score`` and ``GridSearchCV`` like any classifier. Texts may be a list, a 1-D numpy array
or a pandas Series of strings; labels str or int.

The model is named by its parameters (a shipped name or a saved folder) and loaded on first
``fit``, once per process: every clone that ``GridSearchCV`` or ``cross_val_score`` makes shares the
loaded encoder. A loaded :class:`~personalize.sentiment.SentimentClassifier` or classification
:class:`~personalize.learners.MetaLearner` may be passed instead (scikit-learn's ``clone`` deep-copies
such an object, which is cheap for the tiny test encoder, not for MiniLM: prefer names there).

Needs the ``sklearn`` extra (``pip install personalize[sklearn]``).

>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> clf = FewShotClassifier(create_learner("protonet", tiny_encoder()))
>>> clf.fit(["love it", "hate it", "adore it", "awful"], ["pos", "neg", "pos", "neg"]).classes_.tolist()
['neg', 'pos']
>>> clf.predict(["love it"]).tolist(), clf.predict_proba(["love it", "awful"]).shape
(['pos'], (2, 2))
>>> clf.fit("love it", ["pos"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: X is a single string; pass a list of texts, e.g. ['love it']
"""

from __future__ import annotations

import functools
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

from personalize.errors import ConfigError, MissingDependencyError, require
from personalize.extras import missing_message

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.validation import check_is_fitted
except ImportError as error:  # the estimator is the sklearn extra; the rest of the library needs no sklearn
    raise MissingDependencyError(missing_message("scikit-learn", extra="sklearn",
                                                 feature="personalize.FewShotClassifier")) from error


class FewShotClassifier(ClassifierMixin, BaseEstimator):
    """Adapt a meta-learned initialization to labelled texts; predict labels and probabilities.

    Args:
        model: a shipped model name (``"sentiment"``, ``"sentiment-protonet"``, ``"sentiment-pooled"``),
            the folder of a saved classifier or learner checkpoint, or such an object already loaded.
        prior_strength: for prototype models, how many examples the zero-shot prototype of a class
            named like the model's labels counts as (None: the model's own; see ``SentimentClassifier``).
        precision: the encoder's inference precision when the model is loaded by name or folder
            (``"auto"``, ``"float32"``, ``"bfloat16"``, ``"int8"``; None: the default).
        device: where a model loaded by name or folder runs (``"auto"``: cuda > mps > cpu).

    Fitted attributes: ``classes_`` (sorted labels) and ``model_`` (the adapted
    :class:`~personalize.task_model.TaskModel`).
    """

    def __init__(self, model: Any = "sentiment", *, prior_strength: float | None = None,
                 precision: str | None = None, device: str = "auto") -> None:
        self.model = model
        self.prior_strength = prior_strength
        self.precision = precision
        self.device = device

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # one text per sample, not a feature matrix
        tags.input_tags.string = True
        tags.non_deterministic = False
        return tags

    # --- fitting -------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> FewShotClassifier:
        """Adapt the model to texts ``X`` with labels ``y`` (at least two classes, one example each)."""
        labels = _labels(y)
        texts = _texts(X, "X")
        require(len(texts) == len(labels), f"X has {len(texts)} texts but y has {len(labels)} labels; "
                "give one label per text")
        classes = sorted(set(labels))
        require(len(classes) >= 2, f"y has only one class ({classes[0]!r}); a classifier needs examples of "
                "at least two classes")
        base = self._base()
        from personalize.sentiment import SentimentClassifier
        from personalize.task_model import adapt_tasks

        if isinstance(base, SentimentClassifier):
            self.model_ = base.adapt_many([(texts, labels)], [classes], prior_strength=self.prior_strength)[0]
        else:
            require(self.prior_strength is None, "prior_strength applies to a classifier (a shipped sentiment "
                    f"model or a saved classifier folder), not to a bare {base.name} learner; leave it None")
            self.model_ = adapt_tasks(base, [(texts, labels)], [classes])[0]
        self.classes_ = np.asarray(classes)
        return self

    def _base(self) -> Any:
        """The meta-learned model to adapt: loaded (once per process) by name or folder, or as given."""
        from personalize.learners import MetaLearner
        from personalize.sentiment import SentimentClassifier

        if isinstance(self.model, (str, os.PathLike)):
            key = str(self.model)
            from personalize.loading import SHIPPED

            if key not in SHIPPED:
                key = str(Path(key).expanduser().resolve())
            base = _load_shared(key, self.device, self.precision)
        else:
            base = self.model
            require(self.precision is None and self.device == "auto",
                    "precision and device apply to a model loaded by name or folder; for a loaded model set "
                    "model.encoder.precision or load it on the device wanted, and leave them at None and 'auto'")
        if isinstance(base, SentimentClassifier):
            return base
        require(isinstance(base, MetaLearner) and base.kind == "classification",
                "model must be a shipped classifier name, a saved classifier or learner folder, a "
                f"SentimentClassifier or a classification MetaLearner; got {type(base).__name__}")
        return base

    # --- predicting ----------------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_texts, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self, ("model_", "classes_"))
        return self.model_.predict_proba(_texts(X, "X"))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each text (from ``classes_``)."""
        probabilities = self.predict_proba(X)  # checks that it is fitted first
        return self.classes_[probabilities.argmax(axis=1)]


@functools.lru_cache(maxsize=4)
def _load_shared(name_or_path: str, device: str, precision: str | None) -> Any:
    """``pz.load`` once per (model, device, precision) and process, shared by every clone."""
    from personalize.loading import load

    return load(name_or_path, device=device, precision=precision)


def clear_model_cache() -> None:
    """Forget the models loaded by name or folder (the next ``fit`` loads them again)."""
    _load_shared.cache_clear()


def _texts(X: Any, where: str) -> list[str]:
    """X as a list of non-empty str: a list, tuple, 1-D array (or one column) or pandas/polars Series."""
    require(X is not None, f"{where} is None; pass a list of texts")
    if isinstance(X, (str, bytes)):
        raise ConfigError(f"{where} is a single string; pass a list of texts, e.g. [{X!r}]")
    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    array = np.asarray(list(values) if not hasattr(values, "shape") else values, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    require(array.ndim == 1, f"{where} must hold one text per sample (1-D), got shape {array.shape}")
    require(len(array) > 0, f"{where} is empty; pass at least one text")
    texts = []
    for index, text in enumerate(array):
        if not isinstance(text, str):
            raise ConfigError(f"{where}[{index}] is {type(text).__name__} ({text!r}), not a text (str)")
        require(bool(text.strip()), f"{where}[{index}] is an empty text")
        texts.append(str(text))
    return texts


def _labels(y: Any) -> list[Hashable]:
    """y as a list of str or int labels (numpy scalars made plain), all of one kind."""
    require(y is not None, "y is None; pass one label per text")
    if isinstance(y, (str, bytes)):
        raise ConfigError(f"y is a single string; pass one label per text, e.g. [{y!r}, ...]")
    values = y.to_numpy() if hasattr(y, "to_numpy") else y
    array = np.asarray(list(values) if not hasattr(values, "shape") else values, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    require(array.ndim == 1, f"y must hold one label per sample (1-D), got shape {array.shape}")
    labels: list[Hashable] = []
    for index, label in enumerate(array):
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (str, int, np.integer)):
            raise ConfigError(f"Unknown label type: y[{index}] is {type(label).__name__} ({label!r}); labels must "
                              "be str or int (cast integer-valued floats with y.astype(int))")
        labels.append(str(label) if isinstance(label, str) else int(label))
    require(len({type(label) for label in labels}) <= 1, "y mixes str and int labels; use one kind")
    return labels


__all__ = ["FewShotClassifier", "clear_model_cache"]
