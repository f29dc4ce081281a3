"""How much the app takes from a visitor, and the pure checks that hold input to it.

No Streamlit here: the caps and checks import (and are unit-tested) without it, and the pages show
the same numbers in their text. Every check raises :class:`InputError` with a message the page
shows instead of a traceback, before any model sees the input.

>>> checked_sentence("  Lovely fabric ")
'Lovely fabric'
"""

from __future__ import annotations

from typing import Any

import polars as pl

MAX_TEXT_CHARS = 500
"""Characters in one sentence (typed, or a row of the "your own" table)."""
MAX_OWN_EXAMPLES = 200
"""Rows of the "your own" table, blank ones included."""
MAX_LABEL_CHARS = 40
"""Characters in one label name of the "your own" table."""
MAX_TITLE_CHARS = 120
"""Characters in a new film's title."""
MAX_ADDED_FILMS = 20
"""New films one visit may add to its own copy of the recommender (each grows its item tables)."""


class InputError(ValueError):
    """Input a page refuses, with a message to show instead of a traceback."""


def own_examples(frame: Any) -> tuple[list[str], list[str]]:
    """The "your own" table (polars or pandas, columns ``text`` and ``label``) as texts and labels,
    checked: at most ``MAX_OWN_EXAMPLES`` rows, non-empty texts of at most ``MAX_TEXT_CHARS``
    characters, labels of at most ``MAX_LABEL_CHARS``, two labels or more. Blank rows are skipped."""
    table = pl.from_pandas(frame) if not isinstance(frame, pl.DataFrame) else frame
    if table.height > MAX_OWN_EXAMPLES:
        raise InputError(f"At most {MAX_OWN_EXAMPLES} examples, please (the table has {table.height} rows).")
    table = table.filter(pl.col("text").is_not_null() & (pl.col("text").cast(pl.Utf8).str.strip_chars() != ""))
    if table.height == 0:
        raise InputError("Type at least one sentence per label in the table.")
    if table["label"].null_count():
        raise InputError("Every sentence needs a label.")
    texts = [str(text).strip() for text in table["text"].to_list()]
    too_long = [i + 1 for i, text in enumerate(texts) if len(text) > MAX_TEXT_CHARS]
    if too_long:
        raise InputError(f"Rows {too_long[:5]} are longer than {MAX_TEXT_CHARS} characters.")
    labels = [str(label).strip() for label in table["label"].to_list()]
    long_labels = [i + 1 for i, label in enumerate(labels) if len(label) > MAX_LABEL_CHARS]
    if long_labels:
        raise InputError(f"Rows {long_labels[:5]} have labels longer than {MAX_LABEL_CHARS} characters.")
    if len(set(labels)) < 2:
        raise InputError("Use at least two different labels (for example 'positive' and 'negative').")
    return texts, labels


def checked_sentence(text: str) -> str:
    """A typed sentence, stripped: non-empty, at most ``MAX_TEXT_CHARS`` characters."""
    text = (text or "").strip()
    if not text:
        raise InputError("Type a sentence first.")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"Keep it under {MAX_TEXT_CHARS} characters.")
    return text


def new_movie_text(title: str, year: int | None, genres: list[str]) -> str:
    """The text a new film is encoded from: a title of at most ``MAX_TITLE_CHARS``, its year and genres."""
    title = (title or "").strip()
    if not title:
        raise InputError("Give the new film a title.")
    if len(title) > MAX_TITLE_CHARS:
        raise InputError(f"Keep the title under {MAX_TITLE_CHARS} characters.")
    if not genres:
        raise InputError("Pick at least one genre.")
    head = f"{title} ({year})" if year else title
    return f"{head}. Genres: {', '.join(genres)}."


def check_room_for_film(added: int) -> None:
    """Refuse one more film once a visit has added ``MAX_ADDED_FILMS``."""
    if added >= MAX_ADDED_FILMS:
        raise InputError(f"You have added {added} films this visit, the most one visit may add; "
                         "reload the page to start over.")
