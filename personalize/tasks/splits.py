"""Meta-train / meta-validation / meta-test splits *by task*: no task or user is ever in two splits.

>>> splits = split_tasks(range(10), fractions=(0.8, 0.1, 0.1), seed=0)
>>> [len(splits.train), len(splits.val), len(splits.test)]
[8, 1, 1]
>>> splits == split_tasks(range(10), fractions=(0.8, 0.1, 0.1), seed=0)
True
>>> TaskSplits(train=("a", "b"), val=("b",), test=())
Traceback (most recent call last):
...
personalize.errors.ConfigError: task(s) 'b' appear in more than one split
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from personalize.errors import ConfigError, require

SplitName = Literal["train", "val", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class TaskSplits:
    """Disjoint tuples of task keys for meta-training, meta-validation and meta-testing."""

    train: tuple[Hashable, ...]
    val: tuple[Hashable, ...]
    test: tuple[Hashable, ...]

    def __post_init__(self) -> None:
        counts = Counter([*self.train, *self.val, *self.test])
        shared = sorted(str(key) for key, count in counts.items() if count > 1)
        require(not shared, f"task(s) {', '.join(map(repr, shared))} appear in more than one split")

    def __getitem__(self, split: str) -> tuple[Hashable, ...]:
        if split not in SPLIT_NAMES:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, split)

    def sizes(self) -> dict[str, int]:
        """Number of tasks in each split."""
        return {split: len(self[split]) for split in SPLIT_NAMES}


def split_tasks(
    keys: Iterable[Hashable],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> TaskSplits:
    """Shuffle ``keys`` with ``seed`` and cut them into train/val/test by ``fractions``.

    The result depends only on the set of keys and the seed (keys are sorted before shuffling), so
    it is reproducible across runs and machines. Validation and test sizes are rounded (the
    test size capped at what validation leaves); the training split takes the rest.
    """
    require(len(fractions) == 3, f"fractions must have 3 entries (train, val, test), got {len(fractions)}")
    require(all(f >= 0 for f in fractions), f"fractions must be >= 0, got {tuple(fractions)}")
    require(abs(sum(fractions) - 1.0) < 1e-6, f"fractions must sum to 1, got {sum(fractions):.4f}")
    ordered = sorted(set(keys), key=lambda key: (str(type(key)), key))
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    n_val = round(len(shuffled) * fractions[1])
    # Both roundings may go up (3 keys at 0.5/0.5 would ask for 2 + 2): the test split takes what is left.
    n_test = min(round(len(shuffled) * fractions[2]), len(shuffled) - n_val)
    n_train = len(shuffled) - n_val - n_test
    return TaskSplits(
        train=tuple(shuffled[:n_train]),
        val=tuple(shuffled[n_train : n_train + n_val]),
        test=tuple(shuffled[n_train + n_val :]),
    )
