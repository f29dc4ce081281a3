"""personalize: meta-learned personalization on a frozen transformer encoder.

Importing the package is cheap: submodules load on first use, and heavy optional dependencies
(polars, datasets, streamlit) are imported only by the functions that need them.

>>> import personalize
>>> personalize.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

__version__ = "0.1.0"

# Quiet by default: records of the "personalize" logger go nowhere until the application configures
# logging (see personalize.logs; the CLI's -v shows them).
logging.getLogger(__name__).addHandler(logging.NullHandler())

_SUBMODULES = ("data", "encoder", "errors", "frames", "paths", "tasks", "learners")

# The public API, loaded on first use: name -> module that defines it.
_API = {
    "load_encoder": "personalize.encoder",
    "tiny_encoder": "personalize.encoder",
    "load_suite": "personalize.tasks",
    "create_learner": "personalize.learners",
    "MetaFitConfig": "personalize.meta_fit",
    "meta_fit": "personalize.meta_fit",
    "SelectionConfig": "personalize.selection",
    "select_learner": "personalize.selection",
    "TaskModel": "personalize.task_model",
    "adapt_tasks": "personalize.task_model",
    "save_learner": "personalize.checkpoint",
    "load_learner": "personalize.checkpoint",
    "load": "personalize.loading",
    "SentimentClassifier": "personalize.sentiment",
    "FewShotClassifier": "personalize.estimator",
    "Recommender": "personalize.recommend",
    "RecommenderConfig": "personalize.recommend",
    "Columns": "personalize.recommend",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"personalize.{name}")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'personalize' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, *_API])
