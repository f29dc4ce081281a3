"""What the scale benchmarks share: measuring in a fresh process, and a report written as markdown plus JSON.

A timing or a peak memory is only the job's own when the job runs in a process of its own:
:func:`run_fresh` runs a piece of Python there and reads back the JSON line it prints last. A report
is a markdown file with its numbers beside it in a JSON file of the same name
(:func:`write_report_files`), so that ``--report-only`` can rewrite the text from the numbers
(:func:`read_report_numbers`) without measuring again.

>>> run_fresh("import json, sys; print(json.dumps({'args': sys.argv[1:]}))", "a", "b")
{'args': ['a', 'b']}
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run_fresh(code: str, *arguments: str) -> dict[str, Any]:
    """Run ``code`` with ``arguments`` (``sys.argv[1:]``) in a fresh Python; the JSON object it printed last.

    A failing child raises SystemExit with the end of its stderr (benchmarks stop on it).
    """
    result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"child failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_report_files(markdown: Path, lines: Sequence[str], numbers: dict[str, Any]) -> None:
    """Write ``lines`` to ``markdown`` and ``numbers`` to the .json file beside it."""
    markdown.write_text("\n".join(lines), encoding="utf-8")
    markdown.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {markdown}")


def read_report_numbers(markdown: Path) -> dict[str, Any]:
    """The numbers :func:`write_report_files` wrote beside ``markdown``."""
    return json.loads(markdown.with_suffix(".json").read_text(encoding="utf-8"))


__all__ = ["read_report_numbers", "run_fresh", "write_report_files"]
