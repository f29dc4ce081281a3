"""One adapted task: predict in the caller's label space, save, reload, export as a PEFT adapter.

:func:`adapt_tasks` adapts many tasks in one batched call and returns a :class:`TaskModel` for each.
A TaskModel holds the learner (shared meta-parameters) and its own per-task state (adapted weights,
prototypes or posterior), plus the caller's class labels.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> learner = create_learner("protonet", tiny_encoder())
>>> shoes, bags = adapt_tasks(learner, [(["love it", "hate it"], ["pos", "neg"]),
...                                     (["great bag", "awful bag", "fine bag"], [1, 0, 1])])
>>> shoes.classes, bags.classes
(('neg', 'pos'), (0, 1))
>>> shoes.predict(["love it"])
['pos']
>>> shoes.predict_proba(["love it", "hate it"]).shape
(2, 2)
"""

from __future__ import annotations

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
from personalize.peft_export import export_peft

PREDICT_CHUNK = 256
TASK_FORMAT = "personalize-task"
TASK_FORMAT_VERSION = 2  # 2: task.json records the sha256 of task_state.safetensors; 1 (none) still loads
CONFIG_FILE = "task.json"
STATE_FILE = "task_state.safetensors"
KIND = SavedKind("saved task", CONFIG_FILE, frozenset({CONFIG_FILE, STATE_FILE, "learner", CARD_FILE}), TASK_FORMAT)


class TaskModel(HubMixin):
    """An adapted task. Build it with :func:`adapt_tasks` (or a showcase API), not directly."""

    def __init__(self, learner: MetaLearner, state: TaskState, classes: tuple[Hashable, ...] | None) -> None:
        self.learner = learner
        self.state = state
        self.classes = classes

    @property
    def kind(self) -> str:
        return self.learner.kind

    # --- prediction ---------------------------------------------------------------------------------

    def _outputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_texts(texts)
        outputs, variances = [], []
        for start in range(0, len(texts), PREDICT_CHUNK):
            chunk = list(texts[start:start + PREDICT_CHUNK])
            batch = collate_tasks(self.learner.encoder, [chunk], [[0] * len(chunk)], kind=self.kind)
            prediction = self.learner.predict(self.state, batch)
            outputs.append(prediction.outputs[0])
            if prediction.variance is not None:
                variances.append(prediction.variance[0])
        return torch.cat(outputs), torch.cat(variances) if variances else None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [n, n_classes], columns in ``classes`` order, rows summing to 1."""
        require(self.classes is not None, "predict_proba is for classification tasks")
        logits = self._outputs(texts)[0][:, : len(self.classes)].float()
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def predict(self, texts: Sequence[str]) -> list[Hashable] | np.ndarray:
        """Labels (classification, in the caller's label space) or scores (regression)."""
        if self.classes is None:
            return self._outputs(texts)[0].float().cpu().numpy()
        return [self.classes[i] for i in self.predict_proba(texts).argmax(1)]

    def predict_with_uncertainty(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores (or logits) and their predictive variance, where the learner's family has one."""
        outputs, variance = self._outputs(texts)
        return outputs.float().cpu().numpy(), None if variance is None else variance.float().cpu().numpy()

    # --- export, save, load ---------------------------------------------------------------------------

    SAVED_KIND = KIND

    def card_facts(self) -> CardFacts:
        """What this adapted task's model card says (see :meth:`save_pretrained`)."""
        task = f"classes {', '.join(map(str, self.classes))}" if self.classes is not None else "regression"
        return CardFacts(
            "Adapted task model", self.learner.encoder.identity()["name"],
            "text-classification" if self.classes is not None else "text-regression",
            ("few-shot", "adapted", self.learner.name),
            [f"One task adapted by a `{self.learner.name}` meta-learner ({task}); "
             "`model.predict(texts)` answers in the task's own labels."],
            training_record(self.learner.record))

    def adapter_weights(self) -> dict[str, torch.Tensor]:
        """This task's LoRA weights: adapted ones (optimization learners) or the shared ones."""
        source = self.state if any(name.startswith("layer") for name in self.state) else self.learner.init_params()
        return {name: (value[0] if value.dim() == 3 else value).detach()
                for name, value in source.items() if name.startswith("layer")}

    def to_peft(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write this task's adapter as a PEFT folder; the head/state is saved beside it.

        ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a PEFT adapter folder.
        """
        return export_peft(self.learner.encoder, self.learner.config.adapter, self.adapter_weights(), path,
                           extra={"personalize_task_state.safetensors": self.state}, overwrite=overwrite)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Save learner and task state into folder ``path`` (atomically).

        ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a saved task (and
        nothing else: a folder holding other files is refused, see :func:`~personalize.files.staged_folder`).
        """
        path = Path(path)
        with staged_folder(path, KIND, overwrite=overwrite) as staging:
            save_learner(self.learner, staging / "learner")
            document = {"format": TASK_FORMAT, "format_version": TASK_FORMAT_VERSION, "kind": self.kind,
                        "classes": list(self.classes) if self.classes is not None else None,
                        "checksums": {STATE_FILE: save_checked_tensors(staging, STATE_FILE, self.state)}}
            (staging / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None, device: str = "auto") -> TaskModel:
        """Reload a saved task; ``encoder`` must be the one it was trained on (default: bundled).

        Refused with a CheckpointError naming the file: a tensor file changed since it was saved
        (sha256), NaN or infinite values, or classes in task.json that do not fit the saved state.
        """
        path = Path(path)
        document = read_json_document(path, CONFIG_FILE, TASK_FORMAT, (1, TASK_FORMAT_VERSION), "saved task")
        learner = load_learner(path / "learner", encoder=encoder, device=device)
        state = load_checked_tensors(path, STATE_FILE, document, what="saved task",
                                     device=str(learner.encoder.device), config_name=CONFIG_FILE)
        classes = _checked_classes(document.get("classes"), state, learner, path / CONFIG_FILE)
        return cls(learner, state, classes)


def _checked_classes(classes: Any, state: TaskState, learner: MetaLearner,
                     config_file: Path) -> tuple[Hashable, ...] | None:
    """The classes recorded in ``config_file``, checked against the task state they label."""
    if learner.kind == "regression":
        require(classes is None, f"{config_file}: a regression task has no classes, got {classes!r}", CheckpointError)
        return None
    fix = "restore the file or save the task again"
    require(isinstance(classes, list) and all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes),
            f"{config_file}: classes must be a list of str or int, got {classes!r}; {fix}", CheckpointError)
    require(len(set(classes)) == len(classes) >= 2,
            f"{config_file}: classes must be at least two distinct names, got {classes!r}; {fix}", CheckpointError)
    if "class_counts" in state:  # prototypes: one row per class with support examples, padding after
        rows = int((state["class_counts"][0] > 0).sum())
    elif "head_weight" in state:  # a head: one row per class it can predict
        rows = state["head_weight"].shape[1]
    else:
        rows = len(classes)
    exact = "class_counts" in state
    require(len(classes) == rows if exact else len(classes) <= rows,
            f"{config_file} names {len(classes)} classes but the saved state has {rows} class rows; {fix}",
            CheckpointError)
    return tuple(classes)


def adapt_tasks(
    learner: MetaLearner,
    tasks: Sequence[tuple[Sequence[str], Sequence[Any]]],
    classes: Sequence[Sequence[Hashable]] | None = None,
) -> list[TaskModel]:
    """Adapt many tasks in one batched call. Each task is (texts, labels or scores).

    Classification labels may be any str/int values; a task's classes are its sorted distinct labels
    unless ``classes`` gives them (then every class needs at least one example).
    """
    task_classes = check_tasks(tasks, learner.kind, classes)
    texts, targets = [], []
    for index, ((task_texts, task_labels), names) in enumerate(zip(tasks, task_classes)):
        texts.append(list(task_texts))
        if names is None:  # regression: the labels are scores
            targets.append(np.asarray(task_labels, dtype=np.float64).tolist())
            continue
        require(learner.any_number_of_classes or len(names) <= learner.config.head.num_classes,
                f"task {index} has {len(names)} classes but the learner's head has "
                f"{learner.config.head.num_classes}; meta-train with HeadConfig(num_classes={len(names)})")
        position = {name: i for i, name in enumerate(names)}
        targets.append([position[label] for label in task_labels])
    batch = collate_tasks(learner.encoder, texts, targets, kind=learner.kind)
    state = learner.adapt(batch)
    # Each task gets its own contiguous copy: no view pins the whole batch in memory, and the memory
    # layout equals that of a reloaded task, so predictions match bit for bit after save/load.
    return [TaskModel(learner, {k: v[i:i + 1].clone(memory_format=torch.contiguous_format)
                                for k, v in state.items()}, task_classes[i])
            for i in range(batch.num_tasks)]


def check_tasks(tasks: Sequence[tuple[Sequence[str], Sequence[Any]]], kind: str,
                classes: Sequence[Sequence[Hashable]] | None = None) -> list[tuple[Hashable, ...] | None]:
    """Check every task's texts and labels; return each task's classes in order (None for scores).

    Raises :class:`~personalize.errors.ConfigError` naming the first bad task.

    >>> check_tasks([(["fine", "awful", "great"], ["ok", "bad", "ok"])], "classification")
    [('bad', 'ok')]
    >>> check_tasks([(["fine", ""], [1, 0])], "classification")
    Traceback (most recent call last):
    ...
    personalize.errors.ConfigError: task 0: text 1 is empty
    """
    require(len(tasks) >= 1, "adapt_tasks needs at least one task")
    require(classes is None or len(classes) == len(tasks),
            f"classes gives {0 if classes is None else len(classes)} class lists for {len(tasks)} tasks")
    task_classes: list[tuple[Hashable, ...] | None] = []
    for index, (task_texts, task_labels) in enumerate(tasks):
        _check_texts(task_texts, where=f"task {index}: ")
        if len(task_texts) != len(task_labels):
            raise ConfigError(f"task {index}: {len(task_texts)} texts but {len(task_labels)} labels")
        if kind == "regression":
            try:
                scores = np.asarray(task_labels, dtype=np.float64)
            except (TypeError, ValueError):
                raise ConfigError(f"task {index}: scores must be numbers") from None
            require(bool(np.isfinite(scores).all()), f"task {index}: scores must be finite numbers")
            task_classes.append(None)
        else:
            task_classes.append(_class_names(task_labels, classes[index] if classes is not None else None, index))
    return task_classes


def _class_names(labels: Sequence[Any], given: Sequence[Hashable] | None, index: int) -> tuple[Hashable, ...]:
    for label in labels:
        if not isinstance(label, (str, int, np.integer)) or isinstance(label, bool):
            raise ConfigError(f"task {index}: labels must be str or int, got {label!r}")
    present = {label.item() if isinstance(label, np.integer) else label for label in labels}
    if len(present) == 1:
        raise ConfigError(f"task {index}: only one class ({next(iter(present))!r}) among the labels; "
                          "a classifier needs examples of at least two")
    if given is None:
        return tuple(sorted(present, key=lambda value: (isinstance(value, str), value)))
    missing = [name for name in given if name not in present]
    require(not missing, f"task {index}: class(es) {missing} have no example (need at least one per class)")
    unknown = sorted(map(str, present - set(given)))
    require(not unknown, f"task {index}: labels {unknown} are not among the classes {list(given)}")
    return tuple(given)


def _check_texts(texts: Sequence[str], where: str = "") -> None:
    if isinstance(texts, (str, bytes)):
        raise ConfigError(f"{where}texts must be a list of strings, got a single {type(texts).__name__} "
                          f"{texts[:30]!r}; wrap it in a list: [text]")
    require(hasattr(texts, "__len__") and hasattr(texts, "__getitem__"),
            f"{where}texts must be a list of strings, got {type(texts).__name__}")
    require(len(texts) >= 1, f"{where}no texts given")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"{where}text {i} is {type(text).__name__}, not str")
        if not text.strip():
            raise ConfigError(f"{where}text {i} is empty")


__all__ = ["TaskModel", "adapt_tasks", "check_tasks"]
