"""Packing by length: group tasks (or texts) of similar length so each group pads only to its own longest.

A :class:`~personalize.engine.batch.TaskBatch` pads every text to the longest of the whole batch and
every task to the largest. Computing on that padding costs as much as computing on real tokens. The
engine therefore cuts large batches into groups: rows sorted by length, each group as many rows as
fit a token budget at *its own* padded size, then trimmed to that size (:func:`trimmed`). Padding is
masked everywhere (attention, pooling, losses), so a group gives the same numbers as the whole batch.

>>> lengths = torch.tensor([9, 2, 8, 3, 2])
>>> [group.tolist() for group in length_groups(lengths, max_tokens=9)]
[[1, 4, 3], [2], [0]]
>>> [group.tolist() for group in length_groups(lengths, max_tokens=100)]
[[1, 4, 3, 2, 0]]
"""

from __future__ import annotations

import torch

from personalize.engine.batch import TaskBatch
from personalize.errors import require


def length_groups(lengths: torch.Tensor, max_tokens: int, sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Row indices in groups of similar ``lengths`` (shortest first), each padded group within ``max_tokens``.

    A group of rows costs ``rows x max(sizes) x max(lengths)`` padded tokens (``sizes``: examples
    per task, default 1 per row); a row that alone exceeds the budget gets a group of its own.
    Rows are ordered by length, then size, then position, so the groups are deterministic.
    """
    require(max_tokens >= 1, f"max_tokens must be >= 1, got {max_tokens}")
    length_of = lengths.detach().to("cpu", torch.long).tolist()  # plain ints: the loop reads every row
    size_of = [1] * len(length_of) if sizes is None else sizes.detach().to("cpu", torch.long).tolist()
    order = sorted(range(len(length_of)), key=lambda row: (length_of[row], size_of[row], row))
    groups: list[list[int]] = []
    longest = largest = 0
    for row in order:
        grown_longest, grown_largest = max(longest, length_of[row]), max(largest, size_of[row])
        if groups and (len(groups[-1]) + 1) * grown_longest * grown_largest <= max_tokens:
            groups[-1].append(row)
            longest, largest = grown_longest, grown_largest
        else:
            groups.append([row])
            longest, largest = length_of[row], size_of[row]
    return [torch.tensor(group, dtype=torch.long) for group in groups]


def extent(mask: torch.Tensor) -> torch.Tensor:
    """One past the last True (nonzero) position along the last dimension; 0 for none. Holes count.

    >>> extent(torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]))
    tensor([2, 3, 0])
    """
    positions = torch.arange(1, mask.shape[-1] + 1, device=mask.device)
    return (positions * (mask != 0)).amax(-1)


def task_lengths(batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each task's padded extent: the tokens up to its longest real text's end, and the examples up
    to its last real one (a task's real examples need not be contiguous), both [T]."""
    tokens = extent(batch.attention_mask) * batch.example_mask
    return tokens.amax(-1), extent(batch.example_mask)


def trimmed(batch: TaskBatch) -> TaskBatch:
    """``batch`` cut after its last real token and its last real example (trailing padding only).

    >>> from personalize.encoder import tiny_encoder
    >>> from personalize.engine.batch import collate_tasks
    >>> wide = collate_tasks(tiny_encoder(), [["a b c d e f"], ["a", "b"]], [[1], [0, 1]], kind="classification")
    >>> cut = trimmed(wide.select([1]))
    >>> tuple(wide.input_ids.shape), tuple(cut.input_ids.shape)
    ((2, 2, 8), (1, 2, 3))
    """
    longest, largest = task_lengths(batch)
    length, examples = max(1, int(longest.max())), max(1, int(largest.max()))
    side = None if batch.side is None else batch.side[:, :examples]
    prefix = None if batch.prefix is None else batch.prefix[:, :examples, :length]
    return TaskBatch(input_ids=batch.input_ids[:, :examples, :length],
                     attention_mask=batch.attention_mask[:, :examples, :length],
                     targets=batch.targets[:, :examples], example_mask=batch.example_mask[:, :examples],
                     prefix=prefix, prefix_layer=batch.prefix_layer, side=side)


def packed_tasks(batch: TaskBatch, max_tokens: int) -> list[tuple[torch.Tensor, TaskBatch]]:
    """The tasks of ``batch`` in length groups of at most ``max_tokens`` padded tokens, each trimmed:
    (task indices into ``batch``, sub-batch) pairs covering every task once."""
    longest, largest = task_lengths(batch)
    groups = length_groups(longest, max_tokens, sizes=largest)
    return [(group, trimmed(batch.select(group.to(batch.input_ids.device)))) for group in groups]


def scattered(pieces: list[tuple[torch.Tensor, dict[str, torch.Tensor]]], num_tasks: int) -> dict[str, torch.Tensor]:
    """Per-task tensors of every group, put back in the batch's task order ([T, ...] each)."""
    first = pieces[0][1]
    whole = {name: value.new_empty((num_tasks, *value.shape[1:])) for name, value in first.items()}
    for indices, values in pieces:
        for name, value in values.items():
            whole[name][indices.to(value.device)] = value
    return whole


__all__ = ["extent", "length_groups", "packed_tasks", "scattered", "task_lengths", "trimmed"]
