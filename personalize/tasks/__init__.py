"""Tasks: what one user or one domain is, how it splits into support and query, and suites of them.

>>> from personalize.tasks import available_suites
>>> available_suites()  # doctest: +NORMALIZE_WHITESPACE
['clothing-sentiment', 'clothing-sentiment-3way', 'movielens-users', 'movies-sentiment',
 'multi-domain-sentiment']
"""

from personalize.tasks.episodes import Episode, TextTaskPool, keyed_rng
from personalize.tasks.interactions import InteractionEpisode, InteractionPool, melu_episodes
from personalize.tasks.splits import TaskSplits, split_tasks
from personalize.tasks.suite import TaskSuite, available_suites, load_suite
from personalize.tasks.suite_spec import ClassificationSuiteSpec, ExtraSource, InteractionSuiteSpec, SuiteSpec

__all__ = [
    "ClassificationSuiteSpec",
    "Episode",
    "ExtraSource",
    "InteractionEpisode",
    "InteractionPool",
    "InteractionSuiteSpec",
    "SuiteSpec",
    "TaskSplits",
    "TaskSuite",
    "TextTaskPool",
    "available_suites",
    "keyed_rng",
    "load_suite",
    "melu_episodes",
    "split_tasks",
]
