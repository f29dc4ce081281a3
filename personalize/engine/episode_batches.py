"""Episodes (row positions into a task pool) to TaskBatches (tensors), support and query apart.

>>> from personalize.encoder import tiny_encoder
>>> from personalize.tasks.synthetic import synthetic_suite
>>> episodes = synthetic_suite(num_tasks=12, examples_per_class=10).episodes("train", shots=2, n=3, seed=0)
>>> support, query = episode_batches(tiny_encoder(), episodes)
>>> support.num_tasks, support.targets.shape, query.targets.shape
(3, torch.Size([3, 4]), torch.Size([3, 16]))
"""

from __future__ import annotations

from collections.abc import Sequence

from personalize.encoder import Encoder
from personalize.engine.batch import TaskBatch, collate_tasks
from personalize.errors import ConfigError
from personalize.tasks.episodes import Episode


def episode_batches(encoder: Encoder, episodes: Sequence[Episode]) -> tuple[TaskBatch, TaskBatch]:
    """Tokenise a list of classification episodes into a support batch and a query batch."""
    if not episodes or not all(isinstance(episode, Episode) for episode in episodes):
        raise ConfigError("episode_batches needs a non-empty list of classification Episodes")
    support = collate_tasks(encoder, [e.support_texts for e in episodes],
                            [e.support_labels.tolist() for e in episodes], kind="classification")
    query = collate_tasks(encoder, [e.query_texts for e in episodes],
                          [e.query_labels.tolist() for e in episodes], kind="classification")
    return support, query
