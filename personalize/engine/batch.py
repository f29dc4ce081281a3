"""Tasks as tensors: a :class:`TaskBatch` holds T tasks' tokenised examples and targets, padded.

Tasks may have different numbers of examples (unbalanced support sets, users with different
histories): shorter tasks are padded with copies of their own first example, and ``example_mask``
says which examples are real, so losses and statistics ignore the padding.

>>> from personalize.encoder import tiny_encoder
>>> batch = collate_tasks(tiny_encoder(), [["good", "bad", "meh"], ["fine"]], [[1, 0, 0], [1]], kind="classification")
>>> tuple(batch.input_ids.shape[:2]), batch.example_mask.tolist()
((2, 3), [[True, True, True], [True, False, False]])
>>> batch.targets.tolist()
[[1, 0, 0], [1, 1, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from personalize.encoder import Encoder
from personalize.engine.config import TaskKind
from personalize.errors import ConfigError, require


@dataclass
class TaskBatch:
    """T tasks x N examples (padded) x S tokens."""

    input_ids: torch.Tensor       # [T, N, S] long
    attention_mask: torch.Tensor  # [T, N, S] long
    targets: torch.Tensor         # [T, N] long class ids, or float scores
    example_mask: torch.Tensor    # [T, N] bool: False for padding examples
    prefix: torch.Tensor | None = None  # [T, N, S, H] precomputed frozen-prefix states (see prefix_cache.py)
    prefix_layer: int | None = None     # the layer those states enter
    side: torch.Tensor | None = None    # [T, N, F] per-example features beside the text (HeadConfig.side_features)

    @property
    def num_tasks(self) -> int:
        return self.input_ids.shape[0]

    def select(self, tasks: slice | Sequence[int] | torch.Tensor) -> TaskBatch:
        """The sub-batch of the given tasks (a view where possible)."""
        return TaskBatch(
            input_ids=self.input_ids[tasks], attention_mask=self.attention_mask[tasks],
            targets=self.targets[tasks], example_mask=self.example_mask[tasks],
            prefix=None if self.prefix is None else self.prefix[tasks], prefix_layer=self.prefix_layer,
            side=None if self.side is None else self.side[tasks],
        )

    def to(self, device: torch.device | str) -> TaskBatch:
        """The same batch on ``device``."""
        return TaskBatch(
            input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device),
            targets=self.targets.to(device), example_mask=self.example_mask.to(device),
            prefix=None if self.prefix is None else self.prefix.to(device), prefix_layer=self.prefix_layer,
            side=None if self.side is None else self.side.to(device),
        )


def collate_tasks(
    encoder: Encoder,
    texts: Sequence[Sequence[str]],
    targets: Sequence[Sequence[float]],
    *,
    kind: TaskKind,
    side: Sequence[torch.Tensor] | None = None,
) -> TaskBatch:
    """Tokenise every task's texts together (one padding length) and stack them into a TaskBatch.

    ``side``: optional per-example features beside the text, one [N_t, F] tensor per task (see
    ``HeadConfig.side_features``); padded like the targets.
    """
    require(len(texts) == len(targets), f"{len(texts)} tasks of texts but {len(targets)} of targets")
    require(len(texts) >= 1, "at least one task is needed")
    for index, (task_texts, task_targets) in enumerate(zip(texts, targets)):
        if len(task_texts) == 0:
            raise ConfigError(f"task {index} has no examples")
        if len(task_texts) != len(task_targets):
            raise ConfigError(f"task {index} has {len(task_texts)} texts but {len(task_targets)} targets")
    width = max(len(task_texts) for task_texts in texts)
    side_features = None if side is None else _padded_side(side, [len(t) for t in texts], width)
    padded_texts = [list(t) + [t[0]] * (width - len(t)) for t in texts]
    padded_targets = [list(y) + [y[0]] * (width - len(y)) for y in targets]
    flat = [text for task_texts in padded_texts for text in task_texts]
    tokens = encoder.tokenize(flat)
    dtype = torch.long if kind == "classification" else torch.float32
    device = tokens["input_ids"].device
    lengths = torch.tensor([len(t) for t in texts], device=device)
    return TaskBatch(
        input_ids=tokens["input_ids"].reshape(len(texts), width, -1),
        attention_mask=tokens["attention_mask"].reshape(len(texts), width, -1),
        targets=torch.tensor(padded_targets, dtype=dtype, device=device),
        example_mask=torch.arange(width, device=device)[None, :] < lengths[:, None],
        side=None if side_features is None else side_features.to(device),
    )


def _padded_side(side: Sequence[torch.Tensor], lengths: list[int], width: int) -> torch.Tensor:
    """Stack per-task side features [N_t, F] into [T, width, F], padding with each task's first row."""
    require(len(side) == len(lengths), f"{len(lengths)} tasks of texts but {len(side)} of side features")
    rows = []
    for index, (features, length) in enumerate(zip(side, lengths)):
        features = torch.as_tensor(features, dtype=torch.float32)
        require(features.dim() == 2 and features.shape[0] == length,
                f"task {index}: side features must be [{length}, F], got {list(features.shape)}")
        rows.append(torch.cat([features, features[:1].expand(width - length, -1)]))
    require(len({row.shape[1] for row in rows}) == 1, "every task's side features need the same width F")
    return torch.stack(rows)


def concat_examples(first: TaskBatch, second: TaskBatch) -> TaskBatch:
    """Each task's examples of ``first`` followed by its examples of ``second`` (same tasks).

    Padding examples stay marked as padding; token sequences are padded to the longer length.
    """
    require(first.num_tasks == second.num_tasks,
            f"cannot join batches of {first.num_tasks} and {second.num_tasks} tasks")
    require((first.prefix is None) == (second.prefix is None) and first.prefix_layer == second.prefix_layer,
            "cannot join a batch with cached prefix states to one without, or prefixes of different layers")
    require((first.side is None) == (second.side is None), "cannot join a batch with side features to one without")
    length = max(first.input_ids.shape[-1], second.input_ids.shape[-1])

    def widen(tokens: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(tokens, (0, length - tokens.shape[-1]))

    def widen_states(states: torch.Tensor) -> torch.Tensor:  # [T, N, S, H]: pad S, the masked positions
        return torch.nn.functional.pad(states, (0, 0, 0, length - states.shape[-2]))

    prefix = None if first.prefix is None else torch.cat([widen_states(first.prefix), widen_states(second.prefix)], 1)
    return TaskBatch(
        input_ids=torch.cat([widen(first.input_ids), widen(second.input_ids)], dim=1),
        attention_mask=torch.cat([widen(first.attention_mask), widen(second.attention_mask)], dim=1),
        targets=torch.cat([first.targets, second.targets], dim=1),
        example_mask=torch.cat([first.example_mask, second.example_mask], dim=1),
        prefix=prefix,
        prefix_layer=first.prefix_layer,
        side=None if first.side is None else torch.cat([first.side, second.side], dim=1),
    )
