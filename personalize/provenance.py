"""Where a generated file says it came from: the command that made it and the machine it ran on.

Reports, benchmark JSON and saved models record their command so a reader can rerun it, but never a
path of the machine they ran on: :func:`portable_args` (and :func:`portable_command`, for a command
recorded as text) write an absolute path inside the repository relative to the repository root, and
any other absolute path as its last name (a run folder such as ``/scratch/runs/select`` is written
``select``). :func:`machine` describes the processor, the torch threads and, given an encoder, its
device and inference arithmetic.

>>> root = "/home/me/personalize"
>>> portable_args(["--out", "/home/me/personalize/docs", "--classifier=/scratch/runs/select"], root)
['--out', 'docs', '--classifier=select']
>>> portable_command("python scripts/meta_train.py --out /tmp/rec/sentiment-bayes --steps 600", root)
'python scripts/meta_train.py --out sentiment-bayes --steps 600'
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from personalize.encoder import Encoder

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the ``personalize`` package: the repository root in a source checkout."""


def portable_path(path: str, root: str | Path | None = None) -> str:
    """``path`` with nothing of this machine's layout: relative to ``root`` (default the repository root)
    when it is an absolute path inside it, the last name of any other absolute path, relative paths as given.

    >>> portable_path("/repo/personalize/pretrained/sentiment", root="/repo")
    'personalize/pretrained/sentiment'
    >>> portable_path("/work/runs/select/", root="/repo"), portable_path("docs", root="/repo")
    ('select', 'docs')
    """
    if not os.path.isabs(path):
        return path
    absolute = PurePosixPath(Path(path).as_posix())
    roots = {Path(root)} if root is not None else {REPO_ROOT}
    roots |= {base.resolve() for base in roots}
    for base in roots:
        base_path = PurePosixPath(base.as_posix())
        if absolute.is_relative_to(base_path):
            return absolute.relative_to(base_path).as_posix()
    return absolute.name or path  # "/" has no name: it says nothing of this machine


def portable_args(args: Iterable[str], root: str | Path | None = None) -> list[str]:
    """Command-line arguments with each absolute path (``PATH`` or ``--option=PATH``) made :func:`portable_path`."""
    portable = []
    for arg in args:
        option, equals, value = arg.partition("=")
        if equals and option.startswith("-") and not os.path.isabs(arg):
            portable.append(f"{option}={portable_path(value, root)}")
        else:
            portable.append(portable_path(arg, root))
    return portable


def portable_command(command: str, root: str | Path | None = None) -> str:
    """A command recorded as text with its absolute paths made portable; returned unchanged if it has none
    (or is not shell syntax).

    >>> portable_command("python scripts/bench_sentiment.py --only 'meta a'", root="/repo")
    "python scripts/bench_sentiment.py --only 'meta a'"
    """
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: not a command line to rewrite
        return command
    portable = portable_args(words, root)
    return command if portable == words else shlex.join(portable)


def machine(encoder: Encoder | None = None) -> str:
    """This run's processor and torch threads, and the encoder's device and inference arithmetic if given.

    For example ``x86_64, 2 torch threads, cpu, bfloat16 inference``.
    """
    import platform

    import torch

    text = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if encoder is not None:
        dtype = str(encoder.compute_dtype(inference=True)).removeprefix("torch.")
        text += f", {encoder.device}, " + ("int8-weight" if encoder.precision == "int8" else dtype) + " inference"
    return text


__all__ = ["REPO_ROOT", "machine", "portable_args", "portable_command", "portable_path"]


def cpu_flags() -> str:
    """The vector-arithmetic flags of this CPU that decide CPU timings (bf16 is 6x slower without native support)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            words = set(cpuinfo.read().split())
    except OSError:
        return "unknown"
    return " ".join(sorted(words & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})) or "none of avx2/avx512f/amx"
