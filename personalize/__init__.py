"""personalize: meta-learned personalization on a frozen transformer encoder.

Importing the package is cheap: submodules load on first use, and heavy optional dependencies
(polars, datasets, streamlit) are imported only by the functions that need them.

>>> import personalize
>>> personalize.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("data", "encoder", "errors", "frames", "paths", "tasks")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"personalize.{name}")
    raise AttributeError(f"module 'personalize' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
