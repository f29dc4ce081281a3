"""A synthetic text-classification suite with structure shared across tasks, for tests and demos.

Every text is a few words: a task's topic word, neutral filler, and one *cue* word from a shared
positive or negative list. Within a task the class is decided by the cue's polarity, but each task
flips a coin for which class is which, so no single classifier solves every task zero-shot: a
learner must read the support set. What carries over between tasks is *which words matter*, and
that is exactly what meta-learning an adapter initialization can capture.

>>> suite = synthetic_suite(num_tasks=20, examples_per_class=10, seed=0)
>>> suite.splits().sizes()
{'train': 16, 'val': 2, 'test': 2}
>>> episode = suite.episodes("test", shots=2, n=1, seed=0)[0]
>>> len(episode.support_texts), episode.classes
(4, ('a', 'b'))
"""

from __future__ import annotations

import numpy as np

from personalize.tasks.suite import TaskSuite
from personalize.tasks.suite_spec import spec_from_dict

POSITIVE_CUES = ("good", "great", "love", "nice", "happy", "best", "fine", "superb")
NEGATIVE_CUES = ("bad", "awful", "hate", "poor", "sad", "worst", "ugly", "broken")
FILLER = ("the", "item", "was", "it", "and", "this", "one", "so", "my", "very", "size", "color")


def synthetic_frame(num_tasks: int = 40, examples_per_class: int = 30, seed: int = 0):
    """A polars frame (task, text, label) of synthetic polarity tasks with per-task label flips."""
    import polars as pl

    rng = np.random.default_rng(seed)
    rows = []
    for task in range(num_tasks):
        topic = f"topic{task}"
        flipped = bool(rng.integers(2))
        for polarity, cues in ((1, POSITIVE_CUES), (0, NEGATIVE_CUES)):
            label = "a" if polarity != flipped else "b"
            for _ in range(examples_per_class):
                words = [topic, *rng.choice(FILLER, size=3), rng.choice(cues)]
                order = rng.permutation(len(words))
                rows.append((f"task{task:03d}", " ".join(words[i] for i in order), label))
    return pl.DataFrame(rows, schema=["task", "text", "label"], orient="row")


def synthetic_suite(num_tasks: int = 40, examples_per_class: int = 30, seed: int = 0,
                    query_per_class: int = 8) -> TaskSuite:
    """The synthetic frame as a 2-way suite split 8:1:1 by task."""
    spec = spec_from_dict({
        "name": "synthetic-polarity", "kind": "classification", "dataset": "synthetic", "table": "-",
        "description": "Synthetic polarity tasks with per-task label flips (tests and demos).",
        "task_column": "task", "label_column": "label", "shots": [2, 4, 8],
        "query_per_class": query_per_class,
        "classes": [{"name": "a", "values": ["a"]}, {"name": "b", "values": ["b"]}],
        "splits": {"fractions": [0.8, 0.1, 0.1], "seed": seed},
    })
    return TaskSuite(spec, frame=synthetic_frame(num_tasks, examples_per_class, seed))
