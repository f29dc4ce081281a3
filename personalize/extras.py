"""Optional dependencies: what each extra of ``pip install personalize[...]`` brings, and the guard
that names it when a feature needs a package that is not installed.

The core install (torch, transformers, peft, safetensors, numpy, polars and the bundled MiniLM) runs
the whole library; the extras add the demo app (``app``: streamlit), Hugging Face ``datasets``
conversion (``hf``), the scikit-learn estimator (``sklearn``), batch jobs on a Ray cluster
(``ray``: ``--engine ray``), the benchmarks (``bench``) and the test suite (``test``).

>>> import math
>>> require_module("math", extra="bench", feature="this doctest") is math
True
>>> require_module("no_such_module_xyz", extra="hf", feature="to_hf()")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.MissingDependencyError: to_hf() needs the no_such_module_xyz package, which is not installed; ...
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from personalize.errors import MissingDependencyError

# Extra -> the import names it provides (the packages a feature asks for by import name).
EXTRAS: dict[str, tuple[str, ...]] = {
    "app": ("streamlit",),
    "hf": ("datasets",),
    "sklearn": ("sklearn",),
    "ray": ("ray",),
}


def install_hint(extra: str) -> str:
    """The command that installs ``extra``.

    >>> install_hint("app")
    'pip install personalize[app]'
    """
    return f"pip install personalize[{extra}]"


def missing_message(module: str, extra: str, feature: str) -> str:
    """The one-line refusal naming what is missing and the command that fixes it."""
    return f"{feature} needs the {module} package, which is not installed; install it with: {install_hint(extra)}"


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it).

    >>> is_installed("json"), is_installed("no_such_module_xyz")
    (True, False)
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken parent package
        return False


def require_module(module: str, extra: str, feature: str) -> ModuleType:
    """Import and return ``module``, or raise MissingDependencyError naming ``pip install personalize[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(missing_message(module, extra, feature)) from error


__all__ = ["EXTRAS", "install_hint", "is_installed", "missing_message", "require_module"]
