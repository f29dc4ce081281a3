"""The items a recommender knows: ids, texts, display titles and how often each was rated in training.

>>> catalogue = Catalogue(ids=[10, 11], texts=["A film.", "Another film."], titles=None, popularity=[5, 0])
>>> catalogue.indices([11, 10]).tolist()
[1, 0]
>>> catalogue.indices([11, 99])
Traceback (most recent call last):
...
personalize.errors.SchemaError: 1 item id(s) are not in the catalogue, e.g. [99]; add them with add_items first
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     positions, known = catalogue.lookup([11, 99], unknown_items="warn")
>>> positions.tolist(), known.tolist(), "skipped" in str(caught[0].message)
([1], [True, False], True)
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from personalize.errors import ConfigError, SchemaError, require

UnknownItems = Literal["raise", "warn", "ignore"]


@dataclass
class Catalogue:
    """Items in index order; ``popularity`` counts each item's ratings in meta-training (0 for added items)."""

    ids: list[Hashable]
    texts: list[str]
    titles: list[str] | None
    popularity: np.ndarray | Sequence[int]
    _index: dict[Hashable, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.popularity = np.asarray(self.popularity, dtype=np.int64)
        require(len(self.ids) == len(self.texts) == len(self.popularity)
                and (self.titles is None or len(self.titles) == len(self.ids)),
                "Catalogue: ids, texts, titles and popularity must have one entry per item")
        self._index = {item: position for position, item in enumerate(self.ids)}
        require(len(self._index) == len(self.ids), "Catalogue: item ids must be unique", SchemaError)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item: Hashable) -> bool:
        return item in self._index

    def indices(self, items: Sequence[Hashable]) -> np.ndarray:
        """Positions of ``items``; SchemaError naming the unknown ones."""
        positions, _ = self.lookup(items, unknown_items="raise")
        return positions

    def lookup(self, items: Sequence[Hashable], unknown_items: UnknownItems = "raise") -> tuple[np.ndarray, np.ndarray]:
        """Positions of the known ``items`` and a mask of which were known.

        ``unknown_items``: "raise" (SchemaError), "warn" (skip them with a warning) or "ignore" (skip).
        """
        require(unknown_items in ("raise", "warn", "ignore"),
                f"unknown_items must be 'raise', 'warn' or 'ignore', got {unknown_items!r}", ConfigError)
        items = list(items)
        known = np.array([item in self._index for item in items], dtype=bool)
        if not known.all():
            missing = [item for item, is_known in zip(items, known) if not is_known]
            if unknown_items == "raise":
                raise SchemaError(f"{len(missing)} item id(s) are not in the catalogue, e.g. {missing[:5]}; "
                                  "add them with add_items first")
            if unknown_items == "warn":
                warnings.warn(f"skipped {len(missing)} item id(s) not in the catalogue, e.g. {missing[:5]}",
                              UserWarning, stacklevel=3)
        positions = np.array([self._index[item] for item, is_known in zip(items, known) if is_known], dtype=np.int64)
        return positions, known

    def extend(self, ids: Sequence[Hashable], texts: Sequence[str], titles: Sequence[str] | None) -> None:
        """Append new items (no training ratings); their ids must be new."""
        already = [item for item in ids if item in self._index]
        require(not already, f"item id(s) already in the catalogue: {already[:5]}", SchemaError)
        start = len(self.ids)
        self.ids.extend(ids)
        self.texts.extend(texts)
        if self.titles is not None:
            self.titles.extend(titles if titles is not None else [str(item) for item in ids])
        self.popularity = np.concatenate([self.popularity, np.zeros(len(ids), dtype=np.int64)])
        self._index.update({item: start + offset for offset, item in enumerate(ids)})
