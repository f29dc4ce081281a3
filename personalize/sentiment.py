"""Few-shot text classification from a meta-learned initialization: the sentiment showcase's API.

A :class:`SentimentClassifier` wraps a meta-learner trained across sentiment domains (see
``scripts/meta_train.py``) and the label names it was trained with. ``adapt(texts, labels)`` fits a
new domain from a few labelled texts and returns a :class:`~personalize.task_model.TaskModel` that
predicts in the caller's own label space; ``adapt_many`` fits many domains in one batched call;
``zero_shot()`` is the model transferred as it is, with no example from the new domain.

Tasks are not limited to the two classes of training: a metric learner (prototypes) adapts to any
number of classes and to unbalanced support sets. A learner with a fixed-size head (MAML, Meta-SGD:
two outputs) can be given a ``multiclass`` companion, a prototype classifier on the same encoder, that
adapts the tasks with more classes than the head has; the shipped ``sentiment`` model is built so.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> learner = create_learner("protonet", tiny_encoder())
>>> classifier = SentimentClassifier.build(learner, ["bad", "good"], [0, 1])
>>> model = classifier.adapt(["love it", "hate it", "adore it"], ["yes", "no", "yes"])
>>> model.classes
('no', 'yes')
>>> model.predict(["love it"])
['yes']
>>> classifier.adapt(["love it", "adore it"], ["yes", "yes"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: task 0: only one class ('yes') among the labels; a classifier needs ...
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import Encoder
from personalize.engine.batch import collate_tasks
from personalize.errors import CheckpointError, ConfigError, require
from personalize.files import SavedKind, load_checked_tensors, read_json_document, save_checked_tensors, staged_folder
from personalize.hub import CARD_FILE, CardFacts, HubMixin, training_record
from personalize.learners import MetaLearner, TaskState
from personalize.task_model import TaskModel, _check_texts, adapt_tasks, check_tasks

FORMAT = "personalize-text-classifier"
FORMAT_VERSION = 2  # 2: classifier.json records the sha256 of its tensor file; 1 (none) still loads
CONFIG_FILE = "classifier.json"
ZERO_SHOT_FILE = "zero_shot_state.safetensors"
MULTICLASS_FOLDER = "multiclass"
KIND = SavedKind("saved text classifier", CONFIG_FILE,
                 frozenset({CONFIG_FILE, ZERO_SHOT_FILE, MULTICLASS_FOLDER, "learner", CARD_FILE}), FORMAT)
DEFAULT_LABELS = ("negative", "positive")


class SentimentClassifier(HubMixin):
    """A meta-learned initialization for few-shot text classification, ready to adapt.

    Args:
        learner: the meta-trained learner.
        zero_shot_state: the task state used without any example of the new domain.
        labels: names of the classes the zero-shot model predicts, in class-id order.
        record: how it was trained (command, seed, wall time, device, history).
        prior_strength: for prototype learners, how many support examples the zero-shot prototype of
            a class counts as when a task's class bears one of ``labels``' names (0 = support only).
            A few examples then refine the transferred classifier instead of replacing it; see
            :func:`tune_prior_strength`.
        multiclass: the classifier that adapts tasks with more classes than ``learner``'s head has
            (one whose learner takes any number of classes, on the same encoder object); without it
            such tasks are refused.
    """

    def __init__(self, learner: MetaLearner, zero_shot_state: TaskState, labels: Sequence[Hashable] = DEFAULT_LABELS,
                 record: dict[str, Any] | None = None, prior_strength: float = 0.0,
                 multiclass: SentimentClassifier | None = None) -> None:
        require(learner.kind == "classification", "a SentimentClassifier needs a classification learner")
        require(prior_strength >= 0, f"prior_strength must be >= 0, got {prior_strength!r}")
        if multiclass is not None:
            require(not learner.any_number_of_classes,
                    f"{learner.name} takes any number of classes already; it needs no multiclass classifier")
            require(multiclass.learner.any_number_of_classes,
                    f"the multiclass classifier must take any number of classes; {multiclass.learner.name} does not")
            require(multiclass.encoder is learner.encoder,
                    "the multiclass classifier must run on the same encoder object as the learner "
                    "(load it with encoder=learner.encoder)")
            require(multiclass.multiclass is None, "a multiclass classifier cannot have a multiclass companion")
        self.learner = learner
        self.zero_shot_state = zero_shot_state
        self.labels = tuple(labels)
        self.record = record or {}
        self.prior_strength = float(prior_strength)
        self.multiclass = multiclass

    @property
    def encoder(self) -> Encoder:
        return self.learner.encoder

    def __repr__(self) -> str:
        companion = f", multiclass={self.multiclass.learner.name!r}" if self.multiclass is not None else ""
        return (f"SentimentClassifier(learner={self.learner.name!r}, labels={self.labels!r}, "
                f"encoder={self.encoder.name!r}{companion})")

    # --- building ------------------------------------------------------------------------------------

    @classmethod
    def build(cls, learner: MetaLearner, reference_texts: Sequence[str], reference_labels: Sequence[int],
              labels: Sequence[Hashable] = DEFAULT_LABELS, record: dict[str, Any] | None = None,
              multiclass: SentimentClassifier | None = None) -> SentimentClassifier:
        """Wrap a trained learner; its zero-shot state comes from labelled meta-train ``reference_*`` examples.

        Optimization learners (and pooled transfer) predict zero-shot with their learned head as it is; metric and
        model-based learners need examples to predict at all, and use the reference examples
        (class ids ``0..len(labels)-1``) as their support.
        """
        learner.eval()
        if learner.family in ("optimization", "transfer"):
            state = {name: value.detach()[None].clone() for name, value in learner.init_params().items()}
        else:
            require(len(reference_texts) == len(reference_labels) and len(reference_texts) > 0,
                    "build needs as many reference labels as reference texts, and at least one of each")
            batch = collate_tasks(learner.encoder, [list(reference_texts)], [list(reference_labels)],
                                  kind="classification")
            state = {name: value.detach().clone() for name, value in learner.adapt(batch).items()}
        return cls(learner, state, labels, record, multiclass=multiclass)

    # --- adapting ------------------------------------------------------------------------------------

    def adapt(self, texts: Sequence[str], labels: Sequence[Hashable],
              classes: Sequence[Hashable] | None = None) -> TaskModel:
        """Fit one new domain from labelled texts (K = 1 to hundreds per class, balanced or not).

        ``labels`` are str or int in any label space; the returned model predicts in it. ``classes``
        fixes the class order (every class then needs at least one example).
        """
        _check_texts(texts)  # a bare string here would otherwise read as a list of (texts, labels) pairs
        return self.adapt_many([(texts, labels)], None if classes is None else [classes])[0]

    def adapt_many(self, tasks: Sequence[tuple[Sequence[str], Sequence[Hashable]]],
                   classes: Sequence[Sequence[Hashable]] | None = None,
                   prior_strength: float | None = None) -> list[TaskModel]:
        """Fit many domains in one batched call; ``tasks`` is a list of (texts, labels).

        ``prior_strength`` overrides the classifier's own (see the class docstring) for this call; with
        a ``multiclass`` companion it applies to the tasks the companion adapts.
        """
        first = tasks[0] if len(tasks) else ()
        require(not (len(first) and isinstance(first[0], str)),  # adapt_many(texts, labels) or ((texts, labels))
                "adapt_many takes a list of (texts, labels) pairs; for one task use adapt(texts, labels)")
        for index, (_, labels) in enumerate(tasks):
            if isinstance(labels, (str, bytes)):
                raise ConfigError(f"task {index}: labels must be a list, got a single string")
        strength = self.prior_strength if prior_strength is None else prior_strength
        require(strength >= 0, f"prior_strength must be >= 0, got {strength!r}")
        # Check every task once, here, so an error names the task by its place in the caller's list.
        task_classes = check_tasks(tasks, "classification", classes)
        head = self.learner.config.head.num_classes
        to_companion = [self.multiclass is not None and len(names) > head for names in task_classes]
        here = [i for i, moved in enumerate(to_companion) if not moved]
        there = [i for i, moved in enumerate(to_companion) if moved]

        def subset(indices: list[int]) -> tuple[list, list]:
            return [tasks[i] for i in indices], [task_classes[i] for i in indices]

        models: dict[int, TaskModel] = {}
        if here:
            models.update(zip(here, self._adapt_here(*subset(here), strength)))
        if there:
            models.update(zip(there, self.multiclass.adapt_many(*subset(there), prior_strength=prior_strength)))
        return [models[i] for i in range(len(tasks))]

    def _adapt_here(self, tasks: Sequence[tuple[Sequence[str], Sequence[Hashable]]],
                    task_classes: list[tuple[Hashable, ...]], strength: float) -> list[TaskModel]:
        """Adapt checked tasks with this classifier's own learner (then move prototypes toward the prior)."""
        if "head_weight" in self.zero_shot_state:
            return self._adapt_from_matching_rows(tasks, task_classes)
        models = adapt_tasks(self.learner, tasks, task_classes)
        if strength > 0 and "prototypes" in self.zero_shot_state:
            for model in models:
                model.state = self._shrunk_toward_prior(model, strength)
        return models

    def _adapt_from_matching_rows(self, tasks: Sequence[tuple[Sequence[str], Sequence[Hashable]]],
                                  task_classes: list[tuple[Hashable, ...]]) -> list[TaskModel]:
        """Adapt a meta-learned head with each class starting on the head row that fits it.

        The head's rows mean something (row 0 of the shipped model: negative), so a caller's classes
        cannot take them in alphabetical order: ``("happy", "sad")`` would start happy on the
        negative row, and one gradient step does not undo that. Classes named like ``labels`` take
        their rows; otherwise the rows go to the classes in the order under which the zero-shot
        model best predicts the support set. The adapted model keeps the caller's class order.
        """
        named = [set(names) <= set(self.labels) for names in task_classes]
        head_rows = self.learner.config.head.num_classes  # a task with more classes is refused by adapt_tasks
        searched = [index for index, names in enumerate(task_classes) if not named[index] and len(names) <= head_rows]
        probabilities = np.zeros((0, len(self.labels)))
        if searched:  # one batched zero-shot pass over the support texts of every task that needs it
            probabilities = self.zero_shot().predict_proba([text for index in searched for text in tasks[index][0]])
        log_probabilities = np.log(np.clip(probabilities, 1e-12, None))
        row_orders, start, is_searched = [], 0, set(searched)
        for index, ((texts, labels), names) in enumerate(zip(tasks, task_classes)):
            if index not in is_searched:
                row_orders.append(tuple(sorted(names, key=self.labels.index)) if named[index] else names)
                continue
            support = log_probabilities[start:start + len(texts)]
            start += len(texts)
            class_of = [names.index(label) for label in labels]
            best = max(itertools.permutations(range(len(names))),
                       key=lambda rows: sum(support[i, rows[c]] for i, c in enumerate(class_of)))
            row_orders.append(tuple(names[best.index(row)] for row in range(len(names))))
        models = adapt_tasks(self.learner, tasks, row_orders)
        for model, names in zip(models, task_classes):
            order = [model.classes.index(name) for name in names]
            model.state = {**model.state, "head_weight": model.state["head_weight"][:, order].contiguous(),
                           "head_bias": model.state["head_bias"][:, order].contiguous()}
            model.classes = names
        return models

    def _shrunk_toward_prior(self, model: TaskModel, strength: float) -> TaskState:
        """Each prototype of a class named like a zero-shot class, averaged with it at weight ``strength``."""
        prototypes, counts = model.state["prototypes"].clone(), model.state["class_counts"]
        prior = self.zero_shot_state["prototypes"].to(prototypes.device)
        for index, name in enumerate(model.classes or ()):
            if name in self.labels:
                count = counts[0, index]
                prior_prototype = prior[0, self.labels.index(name)]
                prototypes[0, index] = (count * prototypes[0, index] + strength * prior_prototype) / (count + strength)
        return {**model.state, "prototypes": prototypes}

    SAVED_KIND = KIND

    def card_facts(self) -> CardFacts:
        """What this classifier's model card says (see :meth:`save_pretrained`)."""
        companion = " Tasks with more classes go to its prototype companion." if self.multiclass is not None else ""
        return CardFacts(
            "Few-shot text classifier (meta-learned)", self.learner.encoder.identity()["name"], "text-classification",
            ("few-shot", "lora", self.learner.name),
            [f"A `{self.learner.name}` meta-learner over a frozen encoder, labels {', '.join(map(str, self.labels))}. "
             f"`model.adapt(texts, labels)` fits a new domain from a few labelled texts.{companion}"],
            training_record(self.record or self.learner.record))

    def zero_shot(self) -> TaskModel:
        """The model transferred with no example of the new domain; predicts ``labels``."""
        return TaskModel(self.learner, {k: v.clone() for k, v in self.zero_shot_state.items()}, self.labels)

    # --- saving and loading ----------------------------------------------------------------------------

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the classifier to folder ``path`` atomically: learner checkpoint, zero-shot state, JSON.

        ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a saved classifier
        (and nothing else: a folder holding other files is refused).
        """
        path = Path(path)
        with staged_folder(path, KIND, overwrite=overwrite) as staging:
            save_learner(self.learner, staging / "learner", {})
            checksum = save_checked_tensors(staging, ZERO_SHOT_FILE, self.zero_shot_state)
            document = {"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(self.labels),
                        "prior_strength": self.prior_strength, "record": self.record,
                        "checksums": {ZERO_SHOT_FILE: checksum}}
            if self.multiclass is not None:
                self.multiclass.save(staging / MULTICLASS_FOLDER)
                document["multiclass"] = MULTICLASS_FOLDER
            (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None, device: str = "auto") -> SentimentClassifier:
        """Reload a saved classifier (default encoder: the bundled one, at the max_length its learner recorded).

        Refused with a CheckpointError naming the file: a tensor file changed since it was saved
        (sha256), NaN or infinite values, or labels that do not fit the zero-shot state.
        """
        path = Path(path)
        document = read_classifier_document(path)
        learner = load_learner(path / "learner", encoder=encoder, device=device)
        state = load_checked_tensors(path, ZERO_SHOT_FILE, document, what="classifier",
                                     device=str(learner.encoder.device), config_name=CONFIG_FILE)
        labels = document.get("labels")
        rows = next((state[key].shape[1] for key in ("prototypes", "head_weight") if key in state), None)
        require(isinstance(labels, list) and len(set(map(str, labels))) == len(labels) >= 2
                and (rows is None or len(labels) <= rows),
                f"{path / CONFIG_FILE}: labels {labels!r} do not fit the zero-shot state "
                f"({rows} class rows in {ZERO_SHOT_FILE}); restore the file or save the classifier again",
                CheckpointError)
        multiclass = None
        if "multiclass" in document:
            folder = document["multiclass"]
            if folder != MULTICLASS_FOLDER or not (path / folder / CONFIG_FILE).is_file():
                raise CheckpointError(f"classifier {path}: its multiclass classifier {folder!r} is missing; "
                                      f"expected the folder {path / MULTICLASS_FOLDER}")
            multiclass = cls.load(path / folder, encoder=learner.encoder, device=device)
        return cls(learner, state, labels, document.get("record", {}),
                   prior_strength=float(document.get("prior_strength", 0.0)), multiclass=multiclass)


def read_classifier_document(path: str | Path) -> dict[str, Any]:
    """The parsed ``classifier.json`` of a classifier folder, checked for format and version."""
    return read_json_document(path, CONFIG_FILE, FORMAT, (1, FORMAT_VERSION), "text classifier")


def tune_prior_strength(classifier: SentimentClassifier, suite: Any, *, shots: Sequence[int] = (2, 8),
                        episodes: int = 32, grid: Sequence[float] = (0, 1, 2, 4, 8, 16, 32, 64),
                        seed: int = 0) -> dict[str, dict[str, float]]:
    """Query accuracy on ``suite``'s meta-validation episodes for each prior strength in ``grid``.

    Support and query texts are embedded once per episode; only the prototype averaging varies.
    Returns {strength: {"mean": accuracy over every K and episode, "se": its standard error}}.
    Needs a prototype learner.
    """
    require("prototypes" in classifier.zero_shot_state, "prior strength applies to prototype learners only")
    learner = classifier.learner
    scores: dict[str, list[float]] = {str(strength): [] for strength in grid}
    for k in shots:
        for episode in suite.episodes("val", shots=k, n=episodes, seed=seed + 20_000):
            names = [classifier.labels[int(label)] for label in episode.support_labels]
            [adapted] = classifier.adapt_many([(episode.support_texts, names)], [classifier.labels], prior_strength=0)
            queries = collate_tasks(learner.encoder, [episode.query_texts], [list(episode.query_labels)],
                                    kind="classification")
            with torch.inference_mode(), learner.encoder.autocast(inference=True):
                features = learner.embed(queries)
            for strength in grid:
                state = classifier._shrunk_toward_prior(adapted, strength) if strength > 0 else adapted.state
                with torch.inference_mode():
                    logits = learner.logits(features, state["prototypes"], state["class_counts"])
                correct = logits[0].argmax(-1).cpu().numpy() == episode.query_labels
                scores[str(strength)].append(float(correct.mean()))
    return {strength: {"mean": float(np.mean(values)), "se": float(np.std(values, ddof=1) / np.sqrt(len(values)))}
            for strength, values in scores.items()}


def reference_examples(suite: Any, per_class: int = 256, seed: int = 0) -> tuple[list[str], list[int]]:
    """About ``per_class`` labelled meta-train examples of each class, drawn across the train tasks.

    They give metric and model-based learners a zero-shot support set; only meta-train tasks are read.
    """
    rng = np.random.default_rng(seed)
    shots = min(16, per_class)
    texts: list[str] = []
    labels: list[int] = []
    while len(texts) < per_class * suite.spec.ways:
        episode = suite.sample("train", shots=shots, rng=rng, query_per_class=0)
        texts += episode.support_texts
        labels += [int(label) for label in episode.support_labels]
    return texts, labels


__all__ = ["SentimentClassifier", "read_classifier_document", "reference_examples", "tune_prior_strength"]
