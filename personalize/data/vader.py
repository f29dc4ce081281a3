"""VADER's human-rated sentiment snippets (Hutto & Gilbert, ICWSM 2014) as one ``snippets`` table.

The source is the ``*_GroundTruth.txt`` files of ``hutto_ICWSM_2014.tar.gz`` in the
``vaderSentiment`` 3.3.2 sdist: one snippet a line, tab-separated id, mean sentiment on -4..+4 given
by >= 20 human raters, and the text (UTF-8, CRLF line ends). Three of its four domains are kept:

- ``tweets_GroundTruth.txt``: domain ``tweets``, 4,200 tweets;
- ``amazonReviewSnippets_GroundTruth.txt``: domain ``amazon-products``, 3,708 product review
  sentences;
- ``nytEditorialSnippets_GroundTruth.txt``: domain ``nyt-editorials``, 5,190 opinion-article
  sentences.

The fourth, ``movieReviewSnippets`` (10,605 rows), is the Pang & Lee Rotten Tomatoes snippets
again, so it is **not read**: movies stay a domain no suite trains on.

Columns: snippet_id Utf8 (the source id, unique within a domain), domain Utf8, text Utf8 (HTML
entities such as ``&amp;`` unescaped, stripped), score Float64 (the raters' mean), label Utf8.

Binarisation (:func:`label_of`): ``score > 0.5`` is "positive", ``score < -0.5`` "negative", and
a snippet in between (``-0.5 <= score <= 0.5``: the raters saw it as neutral or disagreed) has a
null label, so no two-way suite uses it; its score is kept for other uses.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import TYPE_CHECKING

from personalize.errors import SchemaError

if TYPE_CHECKING:
    import polars as pl

POSITIVE_ABOVE = 0.5
"""A snippet whose mean score is above this is positive."""
NEGATIVE_BELOW = -0.5
"""A snippet whose mean score is below this is negative."""

DOMAINS = {
    "tweets": "tweets",
    "amazon": "amazon-products",
    "nyt": "nyt-editorials",
}
"""Member key -> domain name; the member keys are those of the data set's pinned sources."""


def label_of(score: float) -> str | None:
    """The two-way label of a mean score on -4..+4: positive, negative, or None in the middle.

    >>> [label_of(s) for s in (2.7, 0.51, 0.5, 0.0, -0.5, -0.51, -3.0)]
    ['positive', 'positive', None, None, None, 'negative', 'negative']
    """
    if score > POSITIVE_ABOVE:
        return "positive"
    if score < NEGATIVE_BELOW:
        return "negative"
    return None


def read_ground_truth(members: Mapping[str, bytes]) -> dict[str, pl.DataFrame]:
    """The ``snippets`` table from the ground-truth files, keyed as in :data:`DOMAINS`."""
    import polars as pl

    frames = [parse_ground_truth(members[key], domain=domain, file=key) for key, domain in DOMAINS.items()]
    return {"snippets": pl.concat(frames)}


def parse_ground_truth(raw: bytes, *, domain: str, file: str = "ground truth") -> pl.DataFrame:
    r"""One domain's rows from a ``*_GroundTruth.txt`` file (``id\tscore\ttext`` lines).

    >>> parse_ground_truth(b"1\t2.5\tLove it &amp; more!\r\n2\t0.1\tMeh.\r\n", domain="tweets").rows()
    [('1', 'tweets', 'Love it & more!', 2.5, 'positive'), ('2', 'tweets', 'Meh.', 0.1, None)]
    """
    import polars as pl

    text = raw.decode("utf-8")
    ids, scores, texts = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise SchemaError(f"VADER {file} line {number}: expected 3 tab-separated fields (id, score, "
                              f"text), got {len(fields)}: {line[:80]!r}")
        try:
            score = float(fields[1])
        except ValueError as error:
            raise SchemaError(f"VADER {file} line {number}: score {fields[1]!r} is not a number") from error
        ids.append(fields[0].strip())
        scores.append(score)
        texts.append(html.unescape(fields[2]).strip())
    return pl.DataFrame(
        {
            "snippet_id": ids,
            "domain": [domain] * len(ids),
            "text": texts,
            "score": scores,
            "label": [label_of(score) for score in scores],
        },
        schema={"snippet_id": pl.Utf8, "domain": pl.Utf8, "text": pl.Utf8, "score": pl.Float64,
                "label": pl.Utf8},
    )
