"""Frozen-prefix states cached across episodes: each text's lower layers run once per training run.

When adapters sit only in the upper layers, the hidden states entering the first adapted layer
depend on the text alone. Meta-training draws the same texts again and again in different
episodes, so :class:`PrefixCache` computes those states the first time a text is drawn, keeps them
(by default in float16, trimmed to the text's length) and builds later TaskBatches from memory.
Only the adapted layers then run in each step.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.engine.batched_model import BatchedLoRAModel
>>> from personalize.engine.config import AdapterConfig, HeadConfig
>>> from personalize.tasks.synthetic import synthetic_suite
>>> suite = synthetic_suite(num_tasks=20)
>>> model = BatchedLoRAModel(tiny_encoder(), AdapterConfig(layers=(1,)), HeadConfig())
>>> make_batches = cached_episode_batches(model, suite.pool)
>>> support, query = make_batches(model.encoder, suite.episodes("train", shots=2, n=3, seed=0))
>>> support.prefix.shape[:2], support.prefix_layer, len(make_batches.cache)
(torch.Size([3, 4]), 1, 60)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch
from personalize.engine.batched_model import BatchedLoRAModel
from personalize.errors import ConfigError, require
from personalize.tasks.episodes import Episode, TextTaskPool


class PrefixCache:
    """Token ids and frozen-prefix states of texts identified by row number, computed on first use.

    Args:
        model: the batched model whose frozen prefix (layers below its first adapter) is cached.
        texts_at: returns the texts of given row numbers (e.g. ``TextTaskPool.texts_at``).
        dtype: storage type of the cached states; float16 halves the memory of float32.
        chunk: texts encoded per forward pass when filling the cache.
    """

    def __init__(self, model: BatchedLoRAModel, texts_at: Callable[[np.ndarray], list[str]],
                 dtype: torch.dtype = torch.float16, chunk: int = 128) -> None:
        require(chunk >= 1, f"chunk must be >= 1, got {chunk}")
        self.model = model
        self.texts_at = texts_at
        self.dtype = dtype
        self.chunk = chunk
        self._ids: dict[int, torch.Tensor] = {}
        self._states: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._states)

    def fill(self, rows: np.ndarray) -> None:
        """Compute and keep the states of every row not cached yet."""
        missing = np.array(sorted({int(r) for r in rows} - self._states.keys()), dtype=np.int64)
        encoder = self.model.encoder
        for start in range(0, len(missing), self.chunk):
            part = missing[start:start + self.chunk]
            tokens = encoder.tokenize(self.texts_at(part))
            ids, mask = tokens["input_ids"], tokens["attention_mask"]
            with encoder.autocast():
                states = self.model.frozen_prefix(ids[None], mask[None])[0]
            for row, row_ids, row_mask, row_states in zip(part.tolist(), ids, mask, states):
                length = int(row_mask.sum())
                self._ids[row] = row_ids[:length].cpu().clone()
                self._states[row] = row_states[:length].to("cpu", self.dtype).clone()

    def batch(self, rows: Sequence[np.ndarray], targets: Sequence[Sequence[float]], *, kind: str,
              side: torch.Tensor | None = None) -> TaskBatch:
        """A TaskBatch of T tasks given by row numbers, carrying the cached prefix states.

        Shorter tasks are padded with copies of their first example (masked out), as in
        :func:`~personalize.engine.batch.collate_tasks`. ``side``, a table [rows, F], gives each
        example the side features of its row (``HeadConfig.side_features``).
        """
        require(len(rows) == len(targets) and len(rows) >= 1, "need one target list per task, and one task")
        for index, (task_rows, task_targets) in enumerate(zip(rows, targets)):
            require(len(task_rows) >= 1 and len(task_rows) == len(task_targets),
                    f"task {index}: {len(task_rows)} rows and {len(task_targets)} targets")
        self.fill(np.concatenate([np.asarray(r) for r in rows]))
        width = max(len(r) for r in rows)
        length = max(len(self._ids[int(row)]) for task_rows in rows for row in task_rows)
        hidden = self.model.hidden_size
        device = self.model.encoder.device
        tasks = len(rows)
        input_ids = torch.zeros(tasks, width, length, dtype=torch.long)
        attention_mask = torch.zeros(tasks, width, length, dtype=torch.long)
        prefix = torch.zeros(tasks, width, length, hidden, dtype=torch.float32)
        padded_rows = torch.zeros(tasks, width, dtype=torch.long)
        for t, task_rows in enumerate(rows):
            padded = list(task_rows) + [task_rows[0]] * (width - len(task_rows))
            padded_rows[t] = torch.as_tensor(np.asarray(padded, dtype=np.int64))
            for n, row in enumerate(padded):
                ids, states = self._ids[int(row)], self._states[int(row)]
                input_ids[t, n, :len(ids)] = ids
                attention_mask[t, n, :len(ids)] = 1
                prefix[t, n, :len(ids)] = states.float()
        padded_targets = [list(y) + [y[0]] * (width - len(y)) for y in targets]
        lengths = torch.tensor([len(r) for r in rows])
        return TaskBatch(
            input_ids=input_ids, attention_mask=attention_mask,
            targets=torch.tensor(padded_targets, dtype=torch.long if kind == "classification" else torch.float32),
            example_mask=torch.arange(width)[None, :] < lengths[:, None],
            prefix=prefix, prefix_layer=self.model.first_adapted,
            side=None if side is None else side.float()[padded_rows],
        ).to(device)


class CachedEpisodeBatches:
    """A ``make_batches`` for :func:`~personalize.meta_fit.meta_fit` that reads prefix states from a cache."""

    def __init__(self, cache: PrefixCache, pool: TextTaskPool) -> None:
        self.cache = cache
        self.pool = pool

    def __call__(self, encoder: Encoder, episodes: Sequence[Episode]) -> tuple[TaskBatch, TaskBatch]:
        if encoder is not self.cache.model.encoder:
            raise ConfigError("the prefix cache was built for another encoder")
        for episode in episodes:
            if not isinstance(episode, Episode) or not episode.pool.shares_texts_with(self.pool):
                raise ConfigError("cached batches need classification episodes drawn from the cached pool")
        support = self.cache.batch([e.support_rows for e in episodes], [e.support_labels.tolist() for e in episodes],
                                   kind="classification")
        query = self.cache.batch([e.query_rows for e in episodes], [e.query_labels.tolist() for e in episodes],
                                 kind="classification")
        return support, query


def cached_episode_batches(model: BatchedLoRAModel, pool: TextTaskPool,
                           dtype: torch.dtype = torch.float16) -> CachedEpisodeBatches:
    """Episode batches for ``pool`` (and any pool restricted from it) with cached prefix states."""
    return CachedEpisodeBatches(PrefixCache(model, pool.texts_at, dtype=dtype), pool)
