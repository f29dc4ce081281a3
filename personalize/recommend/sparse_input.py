"""Ratings given as a scipy sparse users x items matrix, turned into the frame every other input takes.

Row ``u`` is user ``user_ids[u]`` (default: ``0 .. rows - 1``), column ``j`` is item ``item_ids[j]``.
Every *stored* entry is a rating, a stored zero included; an entry not stored means "not rated".
Only CSR (``csr_matrix`` or ``csr_array``) is taken: other formats are refused with the call that
converts them, since ``tocsr()`` sums duplicate entries, which the caller should decide on. scipy is
imported here only, when a matrix is given.

>>> from scipy.sparse import csr_matrix
>>> matrix = csr_matrix(([5.0, 1.0, 4.0], ([0, 0, 1], [0, 2, 1])), shape=(2, 3))
>>> frame, users = ratings_frame(matrix, ["a", "b", "c"], user_ids=[10, 11])
>>> frame.rows(), users
([(10, 'a', 5.0), (10, 'c', 1.0), (11, 'b', 4.0)], [10, 11])
>>> ratings_frame(matrix, ["a", "b"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.SchemaError: the ratings matrix has 3 columns but item_ids names 2 items: pass item_ids= ...
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from personalize.errors import SchemaError, require
from personalize.recommend.inputs import Columns

if TYPE_CHECKING:
    import polars as pl


def is_sparse(value: Any) -> bool:
    """Whether ``value`` is a scipy sparse matrix or array, without importing scipy.

    >>> is_sparse([1, 2]), is_sparse(np.zeros((2, 2)))
    (False, False)
    """
    return type(value).__module__.startswith("scipy.sparse")


def ratings_frame(matrix: Any, item_ids: Sequence[Hashable], *, user_ids: Sequence[Hashable] | None = None,
                  columns: Columns | None = None, rating_range: tuple[float, float] | None = None
                  ) -> tuple[pl.DataFrame, list[Hashable]]:
    """A CSR users x items matrix as a ratings frame (user, item, rating, named by ``columns``), and
    the user id of every row, empty rows included.

    Rows come user by user in row order, each user's items in column order. Refused with a
    SchemaError: another sparse format, ``item_ids`` or ``user_ids`` of the wrong length or with
    repeats, an entry stored twice, NaN or infinite entries, and, when ``rating_range`` is given
    and does not hold 0, stored zeros (``matrix.eliminate_zeros()`` drops them when they mean
    "not rated").
    """
    import polars as pl
    import scipy.sparse as sparse

    columns = columns or Columns()
    name = type(matrix).__name__
    require(sparse.issparse(matrix) and matrix.format == "csr",
            f"a ratings matrix must be scipy CSR (csr_matrix or csr_array), got a {name}: convert it with "
            "matrix.tocsr() (which sums entries stored twice)", SchemaError)
    rows, width = matrix.shape
    item_ids = list(item_ids)
    require(width == len(item_ids), f"the ratings matrix has {width} columns but item_ids names {len(item_ids)} "
                                    "items: pass item_ids= with one id per column, in column order", SchemaError)
    require(len(set(item_ids)) == len(item_ids), "item_ids names an item more than once: each column is one item",
            SchemaError)
    users = list(range(rows)) if user_ids is None else list(user_ids)
    require(len(users) == rows, f"the ratings matrix has {rows} rows but user_ids names {len(users)} users: "
                                "pass user_ids= with one id per row, in row order", SchemaError)
    require(len(set(users)) == len(users), "user_ids names a user more than once: each row is one user",
            SchemaError)
    matrix = matrix if matrix.has_sorted_indices else matrix.sorted_indices()
    indptr, indices = np.asarray(matrix.indptr, dtype=np.int64), np.asarray(matrix.indices, dtype=np.int64)
    owners = np.repeat(np.arange(rows, dtype=np.int64), np.diff(indptr))
    values = np.asarray(matrix.data, dtype=np.float64)
    twice = np.flatnonzero((owners[1:] == owners[:-1]) & (indices[1:] == indices[:-1]))
    if len(twice):
        row, column = int(owners[twice[0]]), int(indices[twice[0]])
        raise SchemaError(f"the ratings matrix stores {len(twice)} entr(y/ies) twice, e.g. row {row} (user "
                          f"{users[row]!r}), column {column} (item {item_ids[column]!r}); each item may be rated once "
                          "per user: keep one value per entry (matrix.sum_duplicates() adds them up)")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise SchemaError(f"the ratings matrix stores {len(bad)} NaN or infinite value(s), e.g. at row "
                          f"{int(owners[bad[0]])}, column {int(indices[bad[0]])}: every stored entry is a rating; "
                          "leave unrated entries out of the matrix")
    if rating_range is not None and not rating_range[0] <= 0 <= rating_range[1]:
        zeros = np.flatnonzero(values == 0)
        if len(zeros):
            raise SchemaError(f"the ratings matrix stores {len(zeros)} explicit zero(s), e.g. at row "
                              f"{int(owners[zeros[0]])}, column {int(indices[zeros[0]])}: every stored entry is a "
                              f"rating and 0 is outside the range [{rating_range[0]:g}, {rating_range[1]:g}] seen in "
                              "meta-training; if they mean 'not rated', drop them with matrix.eliminate_zeros()")
    frame = pl.DataFrame({columns.user: pl.Series(np.asarray(users)[owners]),
                          columns.item: pl.Series(np.asarray(item_ids)[indices]),
                          columns.rating: pl.Series(values, dtype=pl.Float64)})
    return frame, users


__all__ = ["is_sparse", "ratings_frame"]
