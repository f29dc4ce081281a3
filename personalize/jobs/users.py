"""``adapt_users``: adapt a recommender to every user of a rating log of any size, into a state bank.

The log (parquet, csv or a folder of parquet files; each user's rows together) is read a chunk of
users at a time. Every chunk is checked with vectorised frame operations, each of its users is
adapted in one batched posterior solve (no padding: a user costs what their ratings cost), and the
users' states, with their top-N items when asked, are committed to the bank as one part. Users are
skipped, never silently: a rating that is null, not finite or outside the model's range, an item
rated twice, or no item the model knows; the summary counts each reason with examples. Rows of
unknown items are dropped (counted); the rest of the user is adapted.

>>> import tempfile, numpy as np, polars as pl
>>> import personalize as pz
>>> rec = pz.load("movielens")
>>> folder = tempfile.mkdtemp()
>>> log = pl.DataFrame({"user_id": [7, 7, 8], "item_id": [1, 50, 181], "rating": [5.0, 4.0, 2.0]})
>>> log.write_parquet(folder + "/log.parquet")
>>> summary = adapt_users(folder + "/log.parquet", rec, folder + "/bank", top=3, progress=False)
>>> summary.adapted, len(pl.read_parquet(folder + "/bank/top/*.parquet"))
(2, 6)
>>> adapt_users(folder + "/log.parquet", rec, folder + "/bank", top=3, progress=False).unchanged   # a rerun
2
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from personalize.bank.codecs import RecommenderStates
from personalize.bank.store import StateBank
from personalize.engine.gaussian import WeightPosterior, grouped_gram_and_moment, weight_posterior
from personalize.errors import ConfigError, require
from personalize.jobs.engines import make_engine
from personalize.jobs.reading import scan_log
from personalize.jobs.runner import (
    Adapted,
    JobSummary,
    Prepared,
    input_hashes,
    model_location,
    resolve_model,
    run_over_log,
)
from personalize.logs import get_logger
from personalize.recommend.inputs import Columns
from personalize.recommend.top_n import top_items

logger = get_logger(__name__)

SOLVE_NUMBERS = 2**25
"""Most numbers (users x D x D) of one batched posterior solve: the whole chunk for the built-in model's
11 features, a few hundred users at a time for an engine recommender's ~400."""
SKIP_INVALID = "a rating that is null or not a finite number"
SKIP_DUPLICATE = "the same item rated twice"
SKIP_NO_ITEMS = "no item the model knows"


class UserChunks:
    """Checks and adapts chunks of a rating log for one recommender (see :func:`adapt_users`)."""

    key = "user_id"

    def __init__(self, recommender: Any, columns: Columns, top: int | None) -> None:
        import polars as pl

        self.recommender = recommender
        self.columns = columns
        self.top = top
        self.codec = RecommenderStates(recommender)
        ids = recommender.catalogue.ids
        self.item_ids = np.asarray(ids)
        self.catalogue = pl.DataFrame({"item_id": ids, "position": np.arange(len(ids), dtype=np.int64)})
        self.unknown_rows = 0

    def prepare(self, chunk: Any) -> Prepared:
        import polars as pl

        low, high = self.recommender.rating_range
        names = {self.columns.user: "user_id", self.columns.item: "item_id", self.columns.rating: "rating"}
        frame = chunk.rename(names).with_columns(
            pl.col("rating").cast(pl.Float64, strict=False),
            pl.col("item_id").cast(self.catalogue.schema["item_id"], strict=False))
        frame = frame.join(self.catalogue, on="item_id", how="left", maintain_order="left")
        self.unknown_rows += int(frame["position"].null_count())
        out_of_range = f"a rating outside the model's range [{low:g}, {high:g}]"
        flags = frame.group_by("user_id", maintain_order=True).agg(
            (pl.col("rating").is_null() | ~pl.col("rating").is_finite()).any().alias(SKIP_INVALID),
            ((pl.col("rating") < low) | (pl.col("rating") > high)).any().alias(out_of_range),
            pl.col("position").drop_nulls().is_duplicated().any().alias(SKIP_DUPLICATE),
            (pl.col("position").drop_nulls().len() == 0).alias(SKIP_NO_ITEMS))
        skipped: dict[str, list[Hashable]] = {}
        bad = pl.lit(False)
        for reason in (SKIP_INVALID, out_of_range, SKIP_DUPLICATE, SKIP_NO_ITEMS):
            users = flags.filter(pl.col(reason) & ~bad)["user_id"].to_list()
            if users:
                skipped[reason] = users
            bad = bad | pl.col(reason)
        good = flags.filter(~bad)["user_id"]
        rows = frame.filter(pl.col("user_id").is_in(good.implode()) & pl.col("position").is_not_null())
        counts = rows.group_by("user_id", maintain_order=True).len()["len"].to_numpy()
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        positions = rows["position"].to_numpy()
        ratings = rows["rating"].to_numpy()
        return Prepared(ids=good.to_list(), hashes=input_hashes(positions, ratings, starts), counts=counts,
                        payload=(positions, ratings, starts), skipped=skipped)

    def _posteriors(self, items: torch.Tensor, values: torch.Tensor, bounds: np.ndarray) -> WeightPosterior:
        """Every kept user's posterior (rows ``bounds[u]:bounds[u + 1]`` are user u's), solved for
        blocks of users whose D x D systems stay within :data:`SOLVE_NUMBERS` numbers; the covariance
        only when the bank stores it."""
        tables = self.recommender.tables
        size = tables.features.shape[1]
        block = max(1, SOLVE_NUMBERS // (size * size))
        means, covariances = [], []
        with torch.no_grad():
            for start in range(0, len(bounds) - 1, block):
                stop = min(start + block, len(bounds) - 1)
                rows = slice(int(bounds[start]), int(bounds[stop]))
                owners = torch.as_tensor(np.repeat(np.arange(stop - start), np.diff(bounds[start:stop + 1])))
                moments = grouped_gram_and_moment(tables.features[items[rows]],
                                                  values[rows] - tables.base[items[rows]], owners, stop - start)
                part = weight_posterior(*moments, tables.prior_mean, tables.prior_variance, tables.noise_variance,
                                        covariance=self.codec.stores_covariance)
                means.append(part.mean)
                covariances.append(part.covariance)
        return WeightPosterior(torch.cat(means), torch.cat(covariances) if self.codec.stores_covariance else None)

    def adapt(self, prepared: Prepared, keep: np.ndarray) -> Adapted:
        import polars as pl

        positions, ratings, starts = prepared.payload
        kept = np.flatnonzero(keep)
        lengths = np.diff(starts)[kept]
        rows = np.flatnonzero(np.repeat(keep, np.diff(starts)))  # the rating rows of the kept users, in order
        users = torch.as_tensor(np.repeat(np.arange(len(kept)), lengths))
        items = torch.as_tensor(positions[rows])
        values = torch.as_tensor(ratings[rows], dtype=torch.float32)
        tables = self.recommender.tables
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        posterior = self._posteriors(items, values, bounds)
        histories = [items[bounds[i]:bounds[i + 1]].numpy() for i in range(len(kept))]
        scores = [values[bounds[i]:bounds[i + 1]].numpy() for i in range(len(kept))]
        groups = self.codec.encode(posterior.mean, posterior.covariance, histories, scores)
        top = None
        if self.top is not None:
            with torch.no_grad():
                best, best_scores = top_items(tables, posterior.mean, users, items, n=self.top,
                                              rating_weight=self.recommender.rating_weight,
                                              rating_range=self.recommender.rating_range)
            real = (best >= 0).numpy()
            user_index = np.repeat(np.arange(len(kept))[:, None], best.shape[1], axis=1)[real]
            ids = [prepared.ids[i] for i in kept]
            top = pl.DataFrame({
                "user_id": pl.Series([ids[i] for i in user_index]),
                "rank": pl.Series(np.tile(np.arange(1, best.shape[1] + 1), (len(kept), 1))[real], dtype=pl.Int32),
                "item_id": pl.Series(self.item_ids[best.numpy()[real]]),
                "score": pl.Series(best_scores.numpy()[real], dtype=pl.Float32)})
        return Adapted(groups=groups, top=top)


def adapt_users(log: str | Path, model: Any, out: str | Path, *, top: int | None = None, batch_users: int = 4096,
                columns: Columns | None = None, progress: bool = True, model_source: str | None = None,
                engine: str = "local", address: str | None = None, workers: int | None = None) -> JobSummary:
    """Adapt ``model`` (a Recommender, or a shipped name or saved folder) to every user of ``log`` into
    the bank at ``out``; with ``top``, also write each user's ``top`` best unrated items under
    ``out/top/``. Rerunning finishes an interrupted run and re-adapts only users whose rows changed.

    ``engine="ray"`` adapts the chunks on ``workers`` Ray actors (a local Ray instance, or the cluster
    at ``address``: see :class:`~personalize.jobs.engines.RayEngine`); the bank is the same."""
    from personalize.recommend import Recommender

    require(top is None or (isinstance(top, int) and top >= 1), f"top must be None or an int >= 1, got {top!r}")
    require(isinstance(batch_users, int) and batch_users >= 1, f"batch_users must be an int >= 1, got {batch_users!r}")
    runner = make_engine(engine, address=address, workers=workers)
    columns = columns or Columns()
    location = model_location(model)
    model, source = resolve_model(model, Recommender, model_source,
                                  "adapt-users needs one (for text tasks use adapt-tasks)")
    if model.attributes is not None:
        logger.warning(f"this recommender reads user attributes {model.attributes.columns}; adapt-users does not "
                       "read a users frame yet: every user starts from the average training user's prior")
    scan = scan_log(log, [columns.user, columns.item, columns.rating])
    adapter = UserChunks(model, columns, top)
    existing = StateBank(out).document.get("top") if (Path(out) / "bank.json").is_file() else top
    require(existing == top, f"the bank at {out} was written with top={existing}; run with the same --top",
            ConfigError)
    summary = run_over_log(adapter, scan, columns.user, out, kind="recommender", source=source, location=location,
                           build=partial(UserChunks, columns=columns, top=top), keys_per_chunk=batch_users,
                           engine=runner, progress=progress, noun="users", extra={"top": top})
    summary.dropped_rows = adapter.unknown_rows
    return summary


__all__ = ["UserChunks", "adapt_users"]
