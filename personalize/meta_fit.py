"""The outer loop: meta-train any learner over a task suite, validate, checkpoint, resume.

Each step draws a meta-batch of training episodes (each with a K drawn from ``shots``), turns them
into a support and a query TaskBatch, lets the learner accumulate its meta-gradient, clips it and
takes an AdamW step (linear warm-up, then cosine decay to a tenth). Every ``val_every`` steps the
learner adapts to a fixed, seeded set of meta-validation episodes and is scored on their queries;
the best validation state is kept. With ``checkpoint_dir`` the run saves ``last/`` (learner,
optimizer, random state, history) every ``checkpoint_every`` steps (default: every ``val_every``)
and at the end, and ``best/`` at each new best validation; a later call with the same directory
resumes where it stopped and ends with the same meta-parameters as a run never interrupted.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.learners import create_learner
>>> from personalize.tasks.synthetic import synthetic_suite
>>> learner = create_learner("protonet", tiny_encoder())
>>> learner = meta_fit(learner, synthetic_suite(num_tasks=20), MetaFitConfig(steps=4, val_every=2, progress=False))
>>> [entry["step"] for entry in learner.record["history"] if "val_loss" in entry]
[0, 2, 4]
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personalize.checkpoint import load_learner, save_learner
from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.episode_batches import episode_batches
from personalize.engine.prefix_cache import cached_episode_batches
from personalize.errors import CheckpointError, ConfigError, require
from personalize.files import SavedKind, load_checked_tensors, save_checked_tensors, staged_folder
from personalize.learners import MetaLearner
from personalize.logs import get_logger
from personalize.provenance import portable_path
from personalize.tasks.episodes import TextTaskPool

logger = get_logger(__name__)

BatchMaker = Callable[[Encoder, Sequence[Any]], tuple[TaskBatch, TaskBatch]]
TRAINER_FILE = "trainer.json"
TRAINER_TENSORS = "trainer.safetensors"
TRAINER_KEYS = ("state", "param_groups", "schedule", "numpy_rng", "fit_config")  # what _resume reads
LAST_KIND = SavedKind("meta-training checkpoint", TRAINER_FILE, frozenset({TRAINER_FILE, TRAINER_TENSORS, "learner"}))
# Settings that change neither what is trained nor how: a run may resume under other values of them.
RESUMABLE_CHANGES = ("steps", "progress", "time_budget_s", "checkpoint_every")


@dataclass(frozen=True)
class MetaFitConfig:
    """The outer loop's settings."""

    steps: int = 500
    """Outer (meta) optimizer steps."""
    meta_batch_size: int = 8
    """Tasks per outer step."""
    shots: tuple[int, ...] = ()
    """K values to draw from for each training episode; empty = the suite's own K values."""
    train_query_per_class: int | None = None
    """Queries per class in training episodes (classification); None = the suite's. Fewer is cheaper."""
    outer_lr: float = 1e-3
    """Peak AdamW learning rate of the meta-parameters."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: int = 20
    """Steps of linear learning-rate warm-up."""
    grad_clip: float = 1.0
    """Clip the meta-gradient's global norm to this (0 = no clipping)."""
    val_every: int = 50
    """Validate every this many steps (and at step 0 and at the end)."""
    val_episodes: int = 64
    """Seeded meta-validation episodes (the same at every validation)."""
    val_shots: int | None = None
    """K of the validation episodes; None = the middle of ``shots``."""
    checkpoint_dir: str | None = None
    """Folder for ``last/`` and ``best/`` checkpoints; resumes from ``last/`` when it exists."""
    checkpoint_every: int | None = None
    """Write ``last/`` every this many steps (and at the end); None = every ``val_every`` steps."""
    keep_best: bool = True
    """At the end, restore the meta-parameters that scored best on meta-validation."""
    time_budget_s: float | None = None
    """Stop early after this many seconds of training (the run records that it did)."""
    seed: int = 0
    """Seed of episode sampling and of dropout."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("steps", "meta_batch_size", "val_every", "val_episodes"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"MetaFitConfig.{name} must be an int >= 1, got {value!r}")
        require(self.warmup_steps >= 0, f"MetaFitConfig.warmup_steps must be >= 0, got {self.warmup_steps!r}")
        require(self.outer_lr > 0, f"MetaFitConfig.outer_lr must be > 0, got {self.outer_lr!r}")
        require(self.grad_clip >= 0, f"MetaFitConfig.grad_clip must be >= 0, got {self.grad_clip!r}")
        require(all(isinstance(k, int) and k >= 1 for k in self.shots),
                f"MetaFitConfig.shots must be integers >= 1, got {self.shots!r}")
        require(self.train_query_per_class is None or self.train_query_per_class >= 1,
                f"MetaFitConfig.train_query_per_class must be None or >= 1, got {self.train_query_per_class!r}")
        every = self.checkpoint_every
        require(every is None or (isinstance(every, int) and every >= 1),
                f"MetaFitConfig.checkpoint_every must be None or an int >= 1, got {self.checkpoint_every!r}")
        require(self.time_budget_s is None or self.time_budget_s > 0,
                f"MetaFitConfig.time_budget_s must be None or > 0, got {self.time_budget_s!r}")


def meta_fit(
    learner: MetaLearner,
    suite: Any,
    config: MetaFitConfig | None = None,
    *,
    make_batches: BatchMaker | None = None,
) -> MetaLearner:
    """Meta-train ``learner`` on ``suite``'s meta-train tasks, validating on its meta-val tasks.

    ``suite`` is a :class:`~personalize.tasks.TaskSuite` or anything with the same
    ``sample(split, shots=, rng=)`` and ``episodes(split, shots=, n=, seed=)`` methods;
    ``make_batches`` turns a list of its episodes into (support, query) TaskBatches (default: see
    :func:`default_batches`). Returns the learner, trained, with ``learner.record`` holding the
    history and the run's settings.
    """
    config = config or MetaFitConfig()
    make_batches = make_batches or default_batches(learner, suite)
    shots = config.shots or tuple(suite.spec.shots)
    val_shots = config.val_shots or sorted(shots)[len(shots) // 2]
    val_batches = _chunks(make_batches(learner.encoder, suite.episodes(
        "val", shots=val_shots, n=config.val_episodes, seed=config.seed + 10_000)), config.meta_batch_size)

    optimizer = torch.optim.AdamW(learner.parameters(), lr=config.outer_lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config.warmup_steps, config.steps))
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    state = {"step": 0, "history": [], "best_val_loss": math.inf, "best_step": None, "train_seconds": 0.0}
    checkpoints = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    best = {name: value.detach().clone() for name, value in learner.state_dict().items()}
    if checkpoints is not None and (checkpoints / "last").is_dir():
        state = _resume(learner, optimizer, schedule, rng, checkpoints / "last", config)
        logger.info(f"{learner.name}: resumed from {checkpoints / 'last'} at step {state['step']}")
        best_so_far = load_learner(checkpoints / "best", encoder=learner.encoder)
        best = {name: value.detach().clone() for name, value in best_so_far.state_dict().items()}

    def validate(step: int) -> None:
        metrics = _validate(learner, val_batches)
        state["history"].append({"step": step, **{f"val_{k}": v for k, v in metrics.items()}})
        logger.info(f"{learner.name} step {step:5d}: " + ", ".join(f"val {k} {v:.4f}" for k, v in metrics.items()))
        if metrics["loss"] < state["best_val_loss"]:
            state["best_val_loss"], state["best_step"] = metrics["loss"], step
            best.update({name: value.detach().clone() for name, value in learner.state_dict().items()})
            if checkpoints is not None:
                save_learner(learner, checkpoints / "best", _record(state, config), overwrite=True)

    if state["step"] == 0:
        validate(0)
    bar = _progress(config, state["step"])
    started = time.perf_counter() - state["train_seconds"]
    stopped_early = False
    while state["step"] < config.steps:
        if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
            stopped_early = True
            logger.info(f"{learner.name}: time budget of {config.time_budget_s:g} s spent at step {state['step']}")
            break
        learner.train()
        query = {} if config.train_query_per_class is None else {"query_per_class": config.train_query_per_class}
        episodes = [suite.sample("train", shots=int(rng.choice(shots)), rng=rng, **query)
                    for _ in range(config.meta_batch_size)]
        support, query = make_batches(learner.encoder, episodes)
        optimizer.zero_grad(set_to_none=True)
        metrics = learner.meta_gradient(support, query)
        if config.grad_clip:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(learner.parameters(), config.grad_clip))
        optimizer.step()
        schedule.step()
        state["step"] += 1
        state["train_seconds"] = time.perf_counter() - started
        state["history"].append({"step": state["step"], **{f"train_{k}": v for k, v in metrics.items()}})
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if k in ("loss", "accuracy", "nll")})
        if state["step"] % config.val_every == 0 or state["step"] == config.steps:
            validate(state["step"])
        if checkpoints is not None and (state["step"] % (config.checkpoint_every or config.val_every) == 0
                                        or state["step"] == config.steps):
            _save_last(learner, optimizer, schedule, rng, checkpoints / "last", state, config)
    bar.close()
    if stopped_early and state["history"][-1].get("val_loss") is None:
        validate(state["step"])
    if config.keep_best:
        learner.load_state_dict(best)
    learner.eval()
    learner.record = {**_record(state, config), "stopped_early": stopped_early}
    return learner


def default_batches(learner: MetaLearner, suite: Any) -> BatchMaker:
    """Cached frozen-prefix batches when the adapters skip lower layers of a text suite, else plain ones.

    With a cache each text's lower layers run once per training run instead of once per episode.
    """
    pool = getattr(suite, "pool", None)
    if isinstance(pool, TextTaskPool) and learner.model.first_adapted > 0:
        return cached_episode_batches(learner.model, pool)
    return episode_batches


# --- validation -------------------------------------------------------------------------------------


def _chunks(batches: tuple[TaskBatch, TaskBatch], size: int) -> list[tuple[TaskBatch, TaskBatch]]:
    support, query = batches
    return [(support.select(slice(i, i + size)), query.select(slice(i, i + size)))
            for i in range(0, support.num_tasks, size)]


def _validate(learner: MetaLearner, batches: list[tuple[TaskBatch, TaskBatch]]) -> dict[str, float]:
    learner.eval()
    totals: dict[str, list[torch.Tensor]] = {}
    for support, query in batches:
        for name, values in learner.evaluate(support, query).items():
            totals.setdefault(name, []).append(values)
    return {name: torch.cat(values).mean().item() for name, values in totals.items()}


# --- schedule, progress, record -----------------------------------------------------------------------


def _warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _progress(config: MetaFitConfig, start: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, disable=not config.progress, desc="meta-fit", unit="step")


def _record(state: dict[str, Any], config: MetaFitConfig) -> dict[str, Any]:
    """The learner's training record; its ``checkpoint_dir`` without this machine's path (the trainer file has it)."""
    fit_config = asdict(config)
    if fit_config["checkpoint_dir"]:
        fit_config["checkpoint_dir"] = portable_path(str(fit_config["checkpoint_dir"]))
    return {"fit_config": fit_config, "history": state["history"], "best_step": state["best_step"],
            "best_val_loss": state["best_val_loss"], "steps_done": state["step"],
            "train_seconds": round(state["train_seconds"], 2)}


# --- checkpoints and resume ---------------------------------------------------------------------------


def _save_last(learner: MetaLearner, optimizer: torch.optim.Optimizer, schedule: Any, rng: np.random.Generator,
               folder: Path, state: dict[str, Any], config: MetaFitConfig) -> None:
    """The learner plus everything needed to continue training exactly where it stopped."""
    optimizer_state = optimizer.state_dict()
    tensors = {f"optimizer.{index}.{name}": value for index, entry in optimizer_state["state"].items()
               for name, value in entry.items()}
    tensors["torch_rng"] = torch.get_rng_state()
    trainer = {"state": {k: v for k, v in state.items() if k != "history"},
               "param_groups": optimizer_state["param_groups"], "schedule": schedule.state_dict(),
               "numpy_rng": rng.bit_generator.state, "fit_config": asdict(config)}
    with staged_folder(folder, LAST_KIND, overwrite=True) as staging:
        save_learner(learner, staging / "learner", _record(state, config))
        trainer["checksums"] = {TRAINER_TENSORS: save_checked_tensors(staging, TRAINER_TENSORS, tensors)}
        (staging / TRAINER_FILE).write_text(json.dumps(trainer, indent=2) + "\n", encoding="utf-8")


def _resume(learner: MetaLearner, optimizer: torch.optim.Optimizer, schedule: Any, rng: np.random.Generator,
            folder: Path, config: MetaFitConfig) -> dict[str, Any]:
    trainer = _read_trainer(folder)
    saved = {k: v for k, v in trainer["fit_config"].items() if k not in RESUMABLE_CHANGES}
    current = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(current)):
        raise ConfigError(f"cannot resume from {folder}: it was trained with other settings; "
                          "use another checkpoint_dir or the same MetaFitConfig")
    saved_learner = load_learner(folder / "learner", encoder=learner.encoder)
    learner.load_state_dict(saved_learner.state_dict())
    tensors = load_checked_tensors(folder, TRAINER_TENSORS, trainer, what="meta-training checkpoint",
                                   config_name=TRAINER_FILE)
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": trainer["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    schedule.load_state_dict(trainer["schedule"])
    torch.set_rng_state(tensors["torch_rng"])
    rng.bit_generator.state = trainer["numpy_rng"]
    state = dict(trainer["state"])
    state["history"] = saved_learner.record.get("history", [])
    return state


def _read_trainer(folder: Path) -> dict[str, Any]:
    """The trainer state of ``last/``; CheckpointError naming the folder and the fix when it is incomplete."""
    absent = [name for name in (TRAINER_FILE, TRAINER_TENSORS, "learner/learner.json") if not (folder / name).is_file()]
    require(not absent, _cannot_resume(folder, f"it lacks {', '.join(absent)}"), CheckpointError)
    try:
        trainer = json.loads((folder / TRAINER_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(_cannot_resume(folder, f"{TRAINER_FILE} is truncated or not JSON ({error})")) from error
    missing = [key for key in TRAINER_KEYS if key not in trainer] if isinstance(trainer, dict) else TRAINER_KEYS
    require(not missing, _cannot_resume(folder, f"{TRAINER_FILE} lacks {', '.join(missing)}"), CheckpointError)
    return trainer


def _cannot_resume(folder: Path, problem: str) -> str:
    return (f"cannot resume meta-training from {folder}: {problem}; delete {folder} to start again from step 0, "
            "or restore it from a copy")
