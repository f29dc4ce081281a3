"""``Recommender``: meta-fit on an interaction log, adapt to new users from a few ratings, rank items.

>>> import numpy as np, polars as pl
>>> from personalize.encoder import tiny_encoder
>>> rng = np.random.default_rng(0)
>>> items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
>>> ratings = pl.DataFrame({"user_id": np.repeat(np.arange(60), 15), "item_id": rng.integers(0, 30, 900),
...                         "rating": rng.integers(1, 6, 900)})
>>> config = RecommenderConfig(factors=4, steps=10, val_every=5)
>>> rec = Recommender.meta_fit(ratings, items, config=config, encoder=tiny_encoder())
>>> user = rec.adapt(pl.DataFrame({"item_id": [3, 7], "rating": [5, 1]}))
>>> user.predict([3, 7, 11]).shape
(3,)
>>> user.recommend(n=3)["rank"].to_list()
[1, 2, 3]
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from personalize.checkpoint import SavedLearner, build_learner, read_learner
from personalize.encoder import Encoder
from personalize.errors import CheckpointError, ConfigError, SchemaError, require
from personalize.files import SavedKind, load_checked_tensors, read_json_document, save_checked_tensors, staged_folder
from personalize.hub import CARD_FILE, CardFacts, HubMixin, training_record
from personalize.learners import MetaLearner
from personalize.recommend.attributes import AttributeTable, UserAttributes
from personalize.recommend.catalogue import Catalogue, UnknownItems
from personalize.recommend.config import RecommenderConfig
from personalize.recommend.elicitation import information_gain, variance_reduction
from personalize.recommend.engine_users import meta_fit_tables, text_item_rows
from personalize.recommend.inputs import Columns, checked_items, checked_ratings
from personalize.recommend.model import RatingModel
from personalize.recommend.ranking import implicit_item_vectors, tune_rating_weight
from personalize.recommend.similar import nearest_items, taste_vectors
from personalize.recommend.sparse_input import is_sparse, ratings_frame
from personalize.recommend.tables import ItemTables
from personalize.recommend.top_n import top_items
from personalize.recommend.training import fit_user_attributes, held_out_episodes, pad_ratings, train_rating_model
from personalize.recommend.user_model import UserModel
from personalize.tasks.interactions import InteractionPool
from personalize.tasks.splits import split_tasks

if TYPE_CHECKING:
    import polars as pl

FORMAT = "personalize-recommender"
FORMAT_VERSION = 4
"""4: an engine learner (``config.learner``, its checkpoint in ``learner/``); 3: user attributes
(``attributes`` in the JSON, ``attribute_weights`` in the tables); 2: the JSON records the sha256 of
the tables; 1 to 3 still load (1 and 2 as recommenders without attributes)."""
CONFIG_FILE = "recommender.json"
TENSORS_FILE = "tables.safetensors"
LEARNER_FOLDER = "learner"
"""Format 4, engine recommenders only: the learner checkpoint (:func:`personalize.checkpoint.save_learner`)."""
KIND = SavedKind("saved recommender", CONFIG_FILE,
                 frozenset({CONFIG_FILE, TENSORS_FILE, LEARNER_FOLDER, CARD_FILE}), FORMAT)
ADAPT_CHUNK = 512  # users per batched posterior solve in adapt_many
RECOMMEND_CHUNK = 1024  # users per batched top-N in recommend (their scores: users x ITEM_BLOCK numbers)
ITEM_BLOCK = 4096  # items per block in recommend and similar_items


class TopItems(NamedTuple):
    """Item ids [U, n] (or [n] for one item's neighbours) and their scores, best first in each row.

    A row with fewer than ``n`` items to rank ends in padding: score ``-inf`` and item id -1 (integer
    ids), "" (string ids) or None."""

    item_ids: np.ndarray
    scores: np.ndarray


def _tables_of(model: RatingModel, implicit: torch.Tensor, implicit_default: torch.Tensor) -> ItemTables:
    """The inference tables of a meta-trained rating model."""
    features, base = model.catalogue_tables()
    with torch.no_grad():
        return ItemTables(features, base, model.text_weights.clone(), model.global_mean.detach().clone(),
                          model.prior_mean.detach().clone(), model.prior_variance.detach().clone(),
                          model.noise_variance.detach().clone(), implicit, implicit_default,
                          model.attribute_weights.detach().clone())


class Recommender(HubMixin):
    """A meta-learned rating model over a catalogue of items described by text.

    Build one with :meth:`meta_fit` (or ``personalize.load("movielens")``), then :meth:`adapt` it
    to a user's history. Predictions are clipped to ``rating_range``, the range seen in training.
    """

    def __init__(self, *, config: RecommenderConfig, columns: Columns, catalogue: Catalogue, tables: ItemTables,
                 rating_range: tuple[float, float], encoder_record: dict[str, Any], record: dict[str, Any],
                 encoder: Encoder | None = None, rating_weight: float = 1.0,
                 rating_levels: list[float] | None = None, attributes: UserAttributes | None = None,
                 learner: MetaLearner | SavedLearner | None = None) -> None:
        require((learner is None) == (config.learner is None),
                "a Recommender has an engine learner exactly when its config names one", ConfigError)
        self.config = config
        self._learner = learner
        self.attributes = attributes
        """The user attribute columns the prior reads and how they are encoded (None: the prior is the
        same for every user)."""
        self.rating_levels = rating_levels
        """The distinct training ratings when there are at most 20 (e.g. 1-5 stars), else None."""
        self.rating_weight = rating_weight
        """How much ``UserModel.recommend`` weighs the predicted rating against the pick score
        (chosen on validation users)."""
        self.columns = columns
        self.catalogue = catalogue
        self.tables = tables
        self.rating_range = rating_range
        self.encoder_record = encoder_record
        self.record = record
        self._encoder = encoder

    SAVED_KIND = KIND

    def card_facts(self) -> CardFacts:
        """What this recommender's model card says (see :meth:`save_pretrained`)."""
        model = f"users as tasks of the `{self.config.learner}` learner" if self.config.learner else "built-in model"
        encoder = str(self.encoder_record.get("name", "unknown"))
        return CardFacts(
            "Cold-start recommender (meta-learned)", encoder, "tabular-regression",
            ("recommendation", "cold-start", "few-shot"),
            [f"A rating model over {len(self.catalogue)} items described by text ({model}, "
             f"{self.config.factors} factors). `rec.adapt(history)` fits a user from a few ratings; "
             "`.recommend(n)` ranks the catalogue."],
            training_record(self.record))

    def __repr__(self) -> str:
        reads = f", attributes {self.attributes.columns}" if self.attributes is not None else ""
        model = f"learner={self.config.learner!r}, " if self.config.learner is not None else ""
        return (f"Recommender({model}items={len(self.catalogue)}, factors={self.config.factors}, "
                f"ratings {self.rating_range[0]:g}-{self.rating_range[1]:g}{reads})")

    @property
    def learner(self) -> MetaLearner | None:
        """The engine learner users are tasks of (None for the built-in matrix-factorisation model).

        Its adapters read the item texts; its Gaussian head's prior and noise are the user prior of
        the tables, so ``adapt`` gives what the learner's own ``adapt`` gives on the same items. A
        loaded recommender builds it on first use, on :attr:`encoder`.
        """
        if isinstance(self._learner, SavedLearner):
            self._learner = build_learner(self._learner, self.encoder)
        return self._learner

    # --- building ---------------------------------------------------------------------------------------

    @classmethod
    def meta_fit(cls, ratings: Any, items: Any, config: RecommenderConfig | None = None, *,
                 validation: Any = None, users: Any = None, attribute_columns: list[str] | None = None,
                 encoder: Encoder | None = None, columns: Columns | None = None,
                 progress: bool = False, checkpoint_dir: str | Path | None = None,
                 item_ids: Sequence[Hashable] | None = None, user_ids: Sequence[Hashable] | None = None
                 ) -> Recommender:
        """Meta-learn item features and the user prior from an interaction log.

        Args:
            ratings: frame of user, item, rating (column names from ``columns``); every item id must
                be in ``items``. Or a scipy CSR users x items matrix whose stored entries are the
                ratings (:mod:`personalize.recommend.sparse_input`): column j is item ``item_ids[j]``
                (default: the ``items`` frame's ids, in its order), row u user ``user_ids[u]``
                (default: 0 .. rows - 1). ``validation`` must then be a frame (or None).
            items: frame of item id and text (and optionally title).
            config: model and training settings.
            validation: ratings of other users for model selection; by default
                ``config.validation_fraction`` of the users with enough ratings are held out of ``ratings``.
            users: optional frame of user id (the ratings' user column) and attribute columns (any:
                text, categories, booleans, numbers): the prior then depends on them, so a user with
                no rating gets a personal prior (:mod:`personalize.recommend.attributes`). It must
                have a row for every user of ``ratings`` and ``validation`` (None for unknown values).
            attribute_columns: which columns of ``users`` to read (default: all but the user id).
            encoder: the frozen text encoder (default: the bundled MiniLM).
            progress: show a progress bar over the training steps (each validation's MAE is logged
                at INFO on the ``personalize`` logger either way).
            checkpoint_dir: with an engine learner (``config.learner``), the folder where
                :func:`personalize.meta_fit` keeps its ``last/`` and ``best/`` checkpoints; running the
                same call again resumes from ``last/``.
        """
        import polars as pl

        from personalize.checkpoint import encoder_record
        from personalize.encoder import load_encoder

        config = config or RecommenderConfig()
        columns = columns or Columns()
        item_table = checked_items(items, columns)
        if is_sparse(ratings):
            require(not is_sparse(validation), "validation= takes a frame: convert a matrix with "
                    "personalize.recommend.sparse_input.ratings_frame(matrix, item_ids, user_ids=...), giving its "
                    "users ids that differ from the training users'", SchemaError)
            ratings, _ = ratings_frame(ratings, item_table["item_id"].to_list() if item_ids is None else item_ids,
                                       user_ids=user_ids, columns=columns)
        else:
            _refuse_matrix_options(item_ids, user_ids)
        ratings = checked_ratings(ratings, columns)
        require(ratings.height > 0, "the ratings frame is empty", SchemaError)
        catalogue = Catalogue(ids=item_table["item_id"].to_list(), texts=item_table["text"].to_list(),
                              titles=item_table["title"].to_list() if "title" in item_table.columns else None,
                              popularity=np.zeros(item_table.height, dtype=np.int64))
        if validation is None:
            ratings, validation = hold_out_users(ratings, config)
        else:
            validation = checked_ratings(validation, columns)
        indexed = [frame.with_columns(pl.Series("item_id", catalogue.indices(frame["item_id"].to_list())))
                   for frame in (ratings, validation)]
        catalogue.popularity = np.bincount(indexed[0]["item_id"].to_numpy(), minlength=len(catalogue))
        encoder = encoder if encoder is not None else load_encoder()
        attributes, table = _user_attributes(users, attribute_columns, ratings, validation, config, columns)
        learner = None
        if config.learner is not None:  # users as tasks of an engine learner, through pz.meta_fit
            learner, model, record = meta_fit_tables(indexed[0], indexed[1], catalogue.texts, encoder, config,
                                                     progress=progress, checkpoint_dir=checkpoint_dir)
            model.attribute_weights = torch.zeros(model.features.shape[1], attributes.width if attributes else 0)
        else:
            require(checkpoint_dir is None, "checkpoint_dir= needs an engine learner (RecommenderConfig.learner, "
                                            "e.g. 'bayes'): the built-in model trains without checkpoints", ConfigError)
            model, record = _fit_rating_model(indexed, catalogue, encoder, config, attributes, progress)
        if table is not None:
            record["attributes"] = fit_user_attributes(model, InteractionPool(indexed[0]), InteractionPool(indexed[1]),
                                                       table, config)
        values = ratings["rating"]
        implicit = implicit_item_vectors(indexed[0]["user_id"].to_numpy(), indexed[0]["item_id"].to_numpy(),
                                         len(catalogue), config.implicit_factors, config.seed)
        if isinstance(model, RatingModel):
            tables = _tables_of(model, *implicit)
        else:
            tables = model
            tables.implicit, tables.implicit_default = implicit
        recommender = cls(config=config, columns=columns, catalogue=catalogue, tables=tables,
                          rating_range=(float(values.min()), float(values.max())),
                          rating_levels=_rating_levels(values.to_numpy()),
                          encoder_record=encoder_record(encoder), record=record, encoder=encoder,
                          attributes=attributes, learner=learner)
        recommender._tune_ranking(InteractionPool(indexed[1]), table)
        return recommender

    def _tune_ranking(self, validation: InteractionPool, attributes: AttributeTable | None = None) -> None:
        """Choose ``rating_weight`` on the validation users: support = all but ``query_size`` ratings,
        relevant = held-out ratings in the top quarter of the rating range."""
        low, high = self.rating_range
        threshold = low + 0.75 * (high - low)
        episodes = held_out_episodes(validation, self.config)
        users = [(e.support_items, e.query_items[e.query_ratings >= threshold]) for e in episodes]
        everything = np.arange(len(self.catalogue))

        def predict_all(position: int) -> tuple[np.ndarray, np.ndarray]:
            episode = episodes[position]
            vectors = attributes.of([episode.user]) if attributes is not None else None
            user = self._adapt_padded([episode.support_items], [episode.support_ratings], [None], vectors)[0]
            return user._scores(everything)[0], user.pick_scores(everything)

        self.rating_weight, scores = tune_rating_weight(users, predict_all, self.rating_range)
        self.record["ranking"] = {"rating_weight": self.rating_weight,
                                  "validation_ndcg@10": {str(weight): score for weight, score in scores.items()}}

    # --- users --------------------------------------------------------------------------------------------

    def adapt(self, history: Any, *, user: Hashable = None, attributes: dict[str, Any] | None = None,
              unknown_items: UnknownItems = "warn", columns: Columns | None = None,
              item_ids: Sequence[Hashable] | None = None) -> UserModel:
        """Adapt to one user from a frame of item id and rating (one row is enough) and, for a
        recommender meta-fitted with user attributes, what is known about the user.

        Items not in the catalogue are skipped with a warning (``unknown_items="raise"`` refuses
        them). An item rated more than once is refused (each copy would count as another rating).
        ``attributes`` is a dict naming every attribute column (None for an unknown value); a value
        no training user held counts as the average user for that column, with a warning. Without
        ``attributes`` the user starts from the average training user's prior. An empty history
        with attributes is a personal cold start; without, it gives the prior every new user gets
        (with a warning saying so).

        ``history`` may also be a scipy CSR matrix of one row, its stored entries the ratings, column j
        item ``item_ids[j]`` (default: the catalogue, in order): the same as the frame of those entries.

        >>> from scipy.sparse import csr_matrix
        >>> import polars as pl
        >>> rec = _example()
        >>> row = csr_matrix(([5.0, 1.0], ([0, 0], [3, 7])), shape=(1, len(rec.catalogue)))
        >>> from_frame = rec.adapt(pl.DataFrame({"item_id": [3, 7], "rating": [5, 1]}))
        >>> bool((rec.adapt(row).predict([3, 7, 11]) == from_frame.predict([3, 7, 11])).all())
        True
        """
        columns = columns or self.columns
        if is_sparse(history):
            history, rows = ratings_frame(history, self.catalogue.ids if item_ids is None else item_ids,
                                          columns=columns, rating_range=self.rating_range)
            require(len(rows) == 1, f"adapt takes one user's history: the ratings matrix has {len(rows)} rows; "
                                    "pass one row (matrix[u]) or use adapt_many for many users", SchemaError)
            history = history.drop(columns.user)
        else:
            _refuse_matrix_options(item_ids, None)
        frame = checked_ratings(history, columns, with_user=False, rating_range=self.rating_range)
        _refuse_duplicates(frame, columns.item, user=user)
        positions, known = self.catalogue.lookup(frame["item_id"].to_list(), unknown_items)
        values = frame["rating"].to_numpy()[known]
        vectors = None if attributes is None else self._attribute_vectors([attributes])
        if len(positions) == 0 and vectors is None:
            warnings.warn("empty history: this user gets the meta-learned prior (the same scores as any new user)",
                          UserWarning, stacklevel=2)
        return self._adapt_padded([positions], [values], [user], vectors)[0]

    def _attribute_vectors(self, records: list[dict[str, Any]]) -> torch.Tensor:
        """Attribute vectors of users given as dicts, warning about values no training user held."""
        require(self.attributes is not None, "this recommender was meta-fitted without user attributes: leave "
                                             "attributes= out, or meta-fit with users=", ConfigError)
        assert self.attributes is not None
        vectors = self.attributes.encode_records(records)
        unseen = self.attributes.unseen_values(records)
        if unseen:
            warnings.warn(f"attribute value(s) no training user held, counted as the average user for their "
                          f"column: {unseen}", UserWarning, stacklevel=3)
        return vectors

    def adapt_many(self, ratings: Any, *, users: Any = None, unknown_items: UnknownItems = "warn",
                   columns: Columns | None = None, item_ids: Sequence[Hashable] | None = None,
                   user_ids: Sequence[Hashable] | None = None, progress: bool = False) -> dict[Hashable, UserModel]:
        """Adapt every user of an interaction log at once (batched solves); returns user id -> UserModel.

        ``progress=True`` shows a tqdm bar over the users (solved in chunks of ``ADAPT_CHUNK``).

        Every user of ``ratings`` is in the result, in order of first appearance. Unknown items are
        handled as in :meth:`adapt`; a user left with no known item gets the meta-learned prior, with
        a warning naming them. A (user, item) pair rated more than once is refused. ``users`` is a
        frame of user id and the attribute columns (see :meth:`meta_fit`) with a row for every user
        of ``ratings``; other rows are ignored.

        ``ratings`` may also be a scipy CSR users x items matrix, its stored entries the ratings
        (stored zeros too; :mod:`personalize.recommend.sparse_input`): column j is item
        ``item_ids[j]`` (default: the catalogue, in order), row u user ``user_ids[u]`` (default:
        0 .. rows - 1). The result is the frame path's on those entries, in row order; a row with no
        entry is a user with no rating (the prior, with a warning).

        >>> from scipy.sparse import csr_matrix
        >>> rec = _example()
        >>> matrix = csr_matrix(([5.0, 1.0, 4.0], ([0, 0, 1], [3, 7, 3])), shape=(2, len(rec.catalogue)))
        >>> users = rec.adapt_many(matrix, user_ids=["ann", "bob"])
        >>> list(users), users["ann"].seen.tolist()
        (['ann', 'bob'], [3, 7])
        """
        columns = columns or self.columns
        every_user = None
        if is_sparse(ratings):
            ratings, every_user = ratings_frame(ratings, self.catalogue.ids if item_ids is None else item_ids,
                                                user_ids=user_ids, columns=columns, rating_range=self.rating_range)
        else:
            _refuse_matrix_options(item_ids, user_ids)
        frame = checked_ratings(ratings, columns, rating_range=self.rating_range)
        _refuse_duplicates(frame, columns.item, user_column=columns.user)
        positions, known = self.catalogue.lookup(frame["item_id"].to_list(), unknown_items)
        if every_user is None:
            every_user = frame["user_id"].unique(maintain_order=True).to_list()
        frame = frame.filter(known).with_columns(position=positions)
        grouped = frame.group_by("user_id", maintain_order=True).agg("position", "rating")
        rated = dict(zip(grouped["user_id"].to_list(), zip(grouped["position"].to_list(), grouped["rating"].to_list())))
        left_empty = [user for user in every_user if user not in rated]
        if left_empty and unknown_items != "ignore":
            warnings.warn(f"{len(left_empty)} user(s) have no item in the catalogue, e.g. {left_empty[:5]}: they get "
                          "the meta-learned prior (the same scores as any new user)", UserWarning, stacklevel=2)
        vectors = None
        if users is not None:
            require(self.attributes is not None, "this recommender was meta-fitted without user attributes: leave "
                                                 "users= out, or meta-fit with users=", ConfigError)
            assert self.attributes is not None
            profiles = _renamed_users(users, columns)
            vectors = self.attributes.encode_frame(profiles, every_user)
            unseen = self.attributes.unseen_values(
                profiles.filter(profiles["user_id"].is_in(every_user)).select(self.attributes.columns).to_dicts())
            if unseen:
                warnings.warn(f"attribute value(s) no training user held, counted as the average user for their "
                              f"column: {unseen}", UserWarning, stacklevel=2)
        items = [np.asarray(rated.get(user, ([], []))[0], dtype=np.int64) for user in every_user]
        values = [np.asarray(rated.get(user, ([], []))[1], dtype=np.float32) for user in every_user]
        adapted: dict[Hashable, UserModel] = {}
        with tqdm(total=len(every_user), disable=not progress, desc="adapt users", unit="user") as bar:
            for start in range(0, len(every_user), ADAPT_CHUNK):
                chunk = slice(start, start + ADAPT_CHUNK)
                models = self._adapt_padded(items[chunk], values[chunk], every_user[chunk],
                                            None if vectors is None else vectors[chunk])
                adapted.update(zip(every_user[chunk], models))
                bar.update(len(models))
        return adapted

    def _adapt_padded(self, items: list[np.ndarray], values: list[np.ndarray], users: list[Hashable],
                      attributes: torch.Tensor | None = None) -> list[UserModel]:
        index, targets, mask = pad_ratings(items, values)
        with torch.no_grad():
            posterior = self.tables.posterior(index, targets, mask, attributes=attributes)
        return [UserModel(self, posterior.select(i, rows=max(1, len(items[i]))), items[i], user,
                          values[i]) for i, user in enumerate(users)]

    def recommend(self, users: Mapping[Hashable, UserModel] | Sequence[UserModel], n: int = 10, *,
                  exclude_seen: bool = True, rating_weight: float | None = None) -> TopItems:
        """The ``n`` best items of many adapted users at once: item ids [U, n] and scores [U, n].

        ``users`` is what :meth:`adapt_many` returns (row u is the u-th user of the dict) or a list
        of :class:`UserModel`; a ratings log goes through ``adapt_many`` first. Row u holds what
        ``users[u].recommend(n, exclude_seen=..., rating_weight=...)`` lists, item for item (scores
        in float32, ties broken by catalogue order), computed for blocks of users over blocks of
        items (never a users x catalogue matrix). A user with fewer than ``n`` unrated items gets
        padding at the end of the row (:class:`TopItems`); ``n`` above the catalogue size is cut to it.

        >>> import polars as pl
        >>> rec = _example()
        >>> users = rec.adapt_many(pl.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 7, 3], "rating": [5, 1, 2]}))
        >>> item_ids, scores = rec.recommend(users, n=4)
        >>> item_ids.shape, item_ids[0].tolist() == users[1].recommend(n=4)["item_id"].to_list()
        ((2, 4), True)
        """
        require(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}", ConfigError)
        weight = self.rating_weight if rating_weight is None else rating_weight
        require(weight >= 0, f"rating_weight must be >= 0, got {weight!r}", ConfigError)
        def refuse_unless(adapted: bool, what: Any) -> None:
            require(adapted, f"recommend takes adapted users (the dict adapt_many returns, or a list of UserModel), "
                             f"got a {type(what).__name__}; for a ratings log call "
                             "rec.recommend(rec.adapt_many(ratings), n)", ConfigError)

        refuse_unless(isinstance(users, Mapping | Sequence) and not isinstance(users, str), users)
        models = list(users.values()) if isinstance(users, Mapping) else list(users)
        for model in models:
            refuse_unless(isinstance(model, UserModel), model)
            require(model.recommender is self, f"user {model.user!r} was adapted by another recommender: adapt "
                                               "them with this one", ConfigError)
        width = min(n, len(self.catalogue))
        positions = np.full((len(models), width), -1, dtype=np.int64)
        scores = np.full((len(models), width), -np.inf, dtype=np.float32)
        for start in range(0, len(models), RECOMMEND_CHUNK):
            chunk = models[start:start + RECOMMEND_CHUNK]
            seen = [model.seen for model in chunk]
            owners = np.repeat(np.arange(len(chunk)), [len(items) for items in seen])
            with torch.no_grad():
                means = torch.cat([model.posterior.mean for model in chunk]).float()
                best, values = top_items(self.tables, means, torch.as_tensor(owners, dtype=torch.long),
                                         torch.as_tensor(np.concatenate(seen), dtype=torch.long), n=width,
                                         rating_weight=weight, rating_range=self.rating_range, block=ITEM_BLOCK,
                                         exclude_seen=exclude_seen)
            best, values = best.numpy(), values.numpy()
            order = np.lexsort((np.where(best < 0, len(self.catalogue), best), -values), axis=-1)
            positions[start:start + len(chunk)] = np.take_along_axis(best, order, axis=1)
            scores[start:start + len(chunk)] = np.take_along_axis(values, order, axis=1)
        return TopItems(self._ids_at(positions), scores)

    def similar_items(self, item_id: Hashable | list[Hashable] | np.ndarray, n: int = 10) -> TopItems:
        """The ``n`` items most like ``item_id`` for this model, best first: item ids [n] and cosines [n].

        Likeness is the cosine of the item feature rows the model scores with (the built-in model's
        constant column left out; :mod:`personalize.recommend.similar`); the item itself is never
        among them and ties go to the earlier catalogue item. A list (or numpy array) of ids gives
        arrays [Q, n], one row per id. ``n`` is cut to the catalogue size minus one.

        >>> rec = _example()
        >>> item_ids, cosines = rec.similar_items(3, n=2)
        >>> item_ids.shape, 3 in item_ids.tolist(), bool(cosines[0] >= cosines[1])
        ((2,), False, True)
        >>> rec.similar_items([3, 7], n=2).item_ids.shape
        (2, 2)
        """
        require(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}", ConfigError)
        many = isinstance(item_id, list | np.ndarray)
        ids = list(item_id) if many else [item_id]
        unknown = [item for item in ids if item not in self.catalogue]
        require(not unknown, f"similar_items: {len(unknown)} item id(s) not in the catalogue, e.g. {unknown[:5]}; "
                             "pass ids of rec.catalogue.ids (add new items with add_items first)", SchemaError)
        unit = taste_vectors(self.tables.features, constant_first=self.config.learner is None)
        positions, cosines = nearest_items(unit, self.catalogue.indices(ids), n, block=ITEM_BLOCK)
        found = TopItems(self._ids_at(positions), cosines)
        return found if many else TopItems(found.item_ids[0], found.scores[0])

    def _ids_at(self, positions: np.ndarray) -> np.ndarray:
        """The item ids at catalogue ``positions`` (any shape); -1 (padding) gives -1, "" or None."""
        ids = np.asarray(self.catalogue.ids)
        if ids.dtype.kind in "iu":
            ids = ids.astype(np.int64)
            pad: Any = -1
        elif ids.dtype.kind == "U":
            pad = ""
        else:
            ids, pad = np.asarray(self.catalogue.ids, dtype=object), None
        found = ids[np.maximum(positions, 0)] if len(ids) else np.full(positions.shape, pad, dtype=ids.dtype)
        found[positions < 0] = pad
        return found

    def suggest_to_rate(self, history: Any = None, n: int = 5, *, candidates: Any = None,
                        popularity_weight: float = 1.0, criterion: str = "variance",
                        columns: Columns | None = None) -> pl.DataFrame:
        """The ``n`` items whose ratings would teach the model most about this user, best first.

        ``criterion="variance"`` (default): each pick most reduces the predictive variance of the
        user's ratings over the catalogue, each item weighted by its popularity (the items the user is
        likely to meet); ``"information"``: each pick carries the most information about the user's
        taste weights. Either is multiplied by ``(popularity / max popularity) ** popularity_weight``,
        the chance the user has seen the item and can rate it (0 ignores it; items added after
        training have popularity 0 and are not suggested unless it is 0). The picks are sequential:
        each assumes the earlier ones were rated. Returns item_id, gain, rank (+ title).
        """
        import polars as pl

        require(isinstance(n, int) and n >= 1, f"n must be an int >= 1, got {n!r}", ConfigError)
        require(popularity_weight >= 0, f"popularity_weight must be >= 0, got {popularity_weight!r}", ConfigError)
        require(criterion in ("variance", "information"),
                f"criterion must be 'variance' or 'information', got {criterion!r}", ConfigError)
        if history is None:  # a new user: the prior
            user = self._adapt_padded([np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.float32)], [None])[0]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # an empty history is the normal start here
                user = self.adapt(history, columns=columns)
        catalogue, tables = self.catalogue, self.tables
        positions = np.arange(len(catalogue)) if candidates is None else catalogue.indices(list(candidates))
        positions = positions[~np.isin(positions, user.seen)]
        share = torch.as_tensor(catalogue.popularity / max(1, catalogue.popularity.sum()), dtype=torch.float32)
        weights = (share[positions] / max(float(share.max()), 1e-12)) ** popularity_weight
        covariance, noise = user.posterior.covariance[0], float(tables.noise_variance)
        if criterion == "variance":
            chosen, gains = variance_reduction(covariance, tables.features[positions], noise, n, tables.features,
                                               share, weights)
        else:
            chosen, gains = information_gain(covariance, tables.features[positions], noise, n, weights)
        picked = positions[chosen]
        frame = pl.DataFrame({"item_id": [catalogue.ids[p] for p in picked], "gain": gains,
                              "rank": np.arange(1, len(picked) + 1)})
        if catalogue.titles is not None:
            frame = frame.with_columns(pl.Series("title", [catalogue.titles[p] for p in picked]))
        return frame

    # --- items ----------------------------------------------------------------------------------------------

    @property
    def encoder(self) -> Encoder:
        """The text encoder; the bundled MiniLM is loaded (and checked) on first use when none was given."""
        if self._encoder is None:
            from personalize.checkpoint import check_encoder
            from personalize.encoder import load_encoder

            encoder = load_encoder(max_length=self.encoder_record.get("max_length", 128))
            check_encoder(encoder, self.encoder_record, "recommender")
            self._encoder = encoder
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Encoder) -> None:
        """Give the recommender an already loaded encoder (checked against the one it was trained on)."""
        from personalize.checkpoint import check_encoder

        check_encoder(encoder, self.encoder_record, "recommender")
        self._encoder = encoder

    def add_items(self, new_items: Any, *, columns: Columns | None = None) -> None:
        """Add items by text alone (item id, text, optional title): they are scored from their text,
        with no interactions. Their ids must be new."""
        require(self.config.use_text, "this recommender was trained without item text (use_text=False): "
                                      "it cannot score items it has never seen", ConfigError)
        frame = checked_items(new_items, columns or self.columns)
        ids = frame["item_id"].to_list()
        already = [item for item in ids if item in self.catalogue]
        require(not already, f"item id(s) already in the catalogue: {already[:5]}", SchemaError)
        tables = self.tables
        with torch.no_grad():
            if self.learner is not None:  # the text through the adapted encoder, its vector regressed from it
                features, base = text_item_rows(self.learner, tables, frame["text"].to_list())
            else:
                embeddings = self.encoder.embed(frame["text"].to_list(), batch_size=self.config.text_batch_size,
                                                normalize=True)
                predicted = embeddings @ tables.text_weights
                features = torch.cat([torch.ones(len(ids), 1), predicted[:, 1:]], dim=1)
                base = tables.global_mean + predicted[:, 0]
        titles = frame["title"].to_list() if "title" in frame.columns else None
        self.catalogue.extend(ids, frame["text"].to_list(), titles)
        tables.features = torch.cat([tables.features, features])
        tables.base = torch.cat([tables.base, base])
        tables.implicit = torch.cat([tables.implicit, torch.zeros(len(ids), tables.implicit.shape[1])])

    # --- saving ----------------------------------------------------------------------------------------------

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the recommender to folder ``path`` (JSON + safetensors, replaced in one step).

        ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a saved recommender
        (and nothing else: a folder holding other files is refused).
        """
        catalogue = self.catalogue
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                    "columns": self.columns.to_dict(), "rating_range": list(self.rating_range),
                    "rating_levels": self.rating_levels,
                    "rating_weight": self.rating_weight,
                    "attributes": self.attributes.to_dict() if self.attributes is not None else None,
                    "encoder": self.encoder_record, "record": self.record,
                    "items": {"ids": catalogue.ids, "texts": catalogue.texts, "titles": catalogue.titles,
                              "popularity": catalogue.popularity.tolist()}}
        with staged_folder(path, KIND, overwrite=overwrite) as staging:
            document["checksums"] = {TENSORS_FILE: save_checked_tensors(staging, TENSORS_FILE, self.tables.to_dict())}
            if self._learner is not None:  # the adapters and head that read new items' texts
                _save_engine_learner(self._learner, staging / LEARNER_FOLDER)
            (staging / CONFIG_FILE).write_text(_json(document), encoding="utf-8")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None) -> Recommender:
        """Read a folder written by :meth:`save`. ``encoder`` is checked against the recorded one.

        Refused with a CheckpointError naming the file: tables changed since they were saved (sha256),
        NaN or infinite values, or tables that do not fit the catalogue in the JSON.
        """
        from personalize.checkpoint import check_encoder

        versions = tuple(range(1, FORMAT_VERSION + 1))
        document = read_json_document(path, CONFIG_FILE, FORMAT, versions, "saved recommender")
        if encoder is not None:
            check_encoder(encoder, document["encoder"], str(path))
        items = document["items"]
        tensors = load_checked_tensors(path, TENSORS_FILE, document, what="saved recommender", config_name=CONFIG_FILE)
        if document["format_version"] < 3:  # saved before user attributes: a prior without any
            size = tensors["prior_mean"].shape[0] if "prior_mean" in tensors else 0
            tensors.setdefault("attribute_weights", torch.zeros(size, 0))
        attributes = UserAttributes.from_dict(document["attributes"]) if document.get("attributes") else None
        _check_tables(tensors, len(items["ids"]), Path(path) / TENSORS_FILE, attributes)
        config = RecommenderConfig.from_dict(document["config"])
        learner = None
        if config.learner is not None:
            require((Path(path) / LEARNER_FOLDER).is_dir(),
                    f"{path} is a recommender on the {config.learner!r} learner but has no {LEARNER_FOLDER}/ folder; "
                    "restore it or save the recommender again", CheckpointError)
            learner = read_learner(Path(path) / LEARNER_FOLDER)
            _check_learner_tables(learner, tensors, Path(path))
        return cls(config=config, columns=Columns(**document["columns"]),
                   catalogue=Catalogue(ids=items["ids"], texts=items["texts"], titles=items["titles"],
                                       popularity=items["popularity"]),
                   tables=ItemTables(**tensors), rating_range=tuple(document["rating_range"]),
                   encoder_record=document["encoder"], record=document["record"], encoder=encoder,
                   rating_weight=float(document["rating_weight"]), rating_levels=document["rating_levels"],
                   attributes=attributes, learner=learner)


def _check_tables(tensors: dict[str, torch.Tensor], items: int, where: Path,
                  attributes: UserAttributes | None) -> None:
    """Refuse tables that lack a field of :class:`ItemTables`, do not have one row per catalogue item,
    or whose attribute weights do not fit the attribute encoding in the JSON."""
    expected = set(ItemTables.__dataclass_fields__)
    require(set(tensors) == expected, f"{where} holds tensors {sorted(tensors)}, expected {sorted(expected)}; "
                                      "restore it or save the recommender again", CheckpointError)
    rows = {name: tensors[name].shape[0] if tensors[name].dim() else None for name in ("features", "base", "implicit")}
    require(all(count == items for count in rows.values()),
            f"{where} has {rows} rows but the catalogue in {CONFIG_FILE} has {items} items; "
            "restore the folder or save the recommender again", CheckpointError)
    width = attributes.width if attributes is not None else 0
    require(tensors["attribute_weights"].shape[-1] == width,
            f"{where} has attribute weights for {tensors['attribute_weights'].shape[-1]} attribute entries but "
            f"{CONFIG_FILE} encodes {width}; restore the folder or save the recommender again", CheckpointError)


def _save_engine_learner(learner: MetaLearner | SavedLearner, folder: Path) -> None:
    """Write the engine learner into the recommender's staging folder (a loaded one as it was read)."""
    from personalize.checkpoint import save_learner, save_saved_learner

    if isinstance(learner, SavedLearner):
        save_saved_learner(learner, folder)
    else:
        save_learner(learner, folder)


def _check_learner_tables(learner: SavedLearner, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a learner folder whose head does not read the tables' feature rows."""
    head = learner.tensors.get("init.head_weight")
    width = tensors["features"].shape[1]
    require(head is not None and head.shape[-1] == width,
            f"{path / LEARNER_FOLDER} does not hold the head of these tables ({width} features per item); "
            "restore the folder or save the recommender again", CheckpointError)


def _refuse_matrix_options(item_ids: Any, user_ids: Any) -> None:
    """Refuse ``item_ids=`` / ``user_ids=`` given with a frame: they name a matrix's columns and rows."""
    given = [name for name, value in (("item_ids", item_ids), ("user_ids", user_ids)) if value is not None]
    require(not given, f"{' and '.join(given)}= name the columns and rows of a scipy CSR ratings matrix; a frame "
                       "names its items and users in its own columns: leave them out", ConfigError)


@functools.cache
def _example() -> Recommender:
    """A tiny recommender for the doctests (tiny encoder, 30 items, a few training steps), fitted once."""
    import polars as pl

    from personalize.encoder import tiny_encoder

    rng = np.random.default_rng(0)
    items = pl.DataFrame({"item_id": range(30), "text": [f"film number {i}" for i in range(30)]})
    ratings = pl.DataFrame({"user_id": np.repeat(np.arange(60), 15), "item_id": rng.integers(0, 30, 900),
                            "rating": rng.integers(1, 6, 900)})
    return Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=4, steps=10, val_every=5),
                                encoder=tiny_encoder())


def _refuse_duplicates(frame: pl.DataFrame, item_column: str, *, user: Hashable = None,
                       user_column: str | None = None) -> None:
    """Refuse a history (or a log, with ``user_column``) that rates an item more than once per user."""
    import polars as pl

    keys = ["item_id"] if user_column is None else ["user_id", "item_id"]
    repeated = frame.group_by(keys, maintain_order=True).len().filter(pl.col("len") > 1)
    if repeated.height == 0:
        return
    first = repeated.row(0, named=True)
    who = (f"user {first['user_id']!r} rates" if user_column is not None
           else "the history" + (f" of user {user!r}" if user is not None else "") + " rates")
    raise SchemaError(f"{who} item {first['item_id']!r} {first['len']} times ({repeated.height} repeated "
                      f"item(s) in all, column {item_column!r}); each item may be rated once: keep one rating "
                      "per item (e.g. the latest)")


def hold_out_users(ratings: pl.DataFrame, config: RecommenderConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``config.validation_fraction`` of the users with more than ``query_size`` ratings off the log."""
    import polars as pl

    counts = ratings.group_by("user_id").len()
    eligible = counts.filter(pl.col("len") > config.query_size)["user_id"].to_list()
    require(len(eligible) >= 2, f"meta_fit needs at least 2 users with more than {config.query_size} ratings "
                                "(one is held out for validation); pass validation= or lower query_size", SchemaError)
    held_out = split_tasks(eligible, (1 - config.validation_fraction, config.validation_fraction, 0.0),
                           config.seed).val or (eligible[0],)
    is_held_out = pl.col("user_id").is_in(list(held_out))
    return ratings.filter(~is_held_out), ratings.filter(is_held_out)


def _renamed_users(users: Any, columns: Columns) -> pl.DataFrame:
    """A users frame as polars with the user column named ``user_id``."""
    from personalize.frames import as_polars, require_columns

    frame = as_polars(users)
    require_columns(frame, [columns.user], what="users")
    return frame.rename({columns.user: "user_id"}) if columns.user != "user_id" else frame


def _user_attributes(users: Any, attribute_columns: list[str] | None, ratings: pl.DataFrame,
                     validation: pl.DataFrame, config: RecommenderConfig, columns: Columns
                     ) -> tuple[UserAttributes | None, AttributeTable | None]:
    """The attribute encoding fitted on the training users, and every training and validation
    user's vector; (None, None) without a users frame."""
    if users is None:
        require(attribute_columns is None, "attribute_columns= needs users= (the frame holding them)", ConfigError)
        return None, None
    frame = _renamed_users(users, columns)
    if attribute_columns is not None:
        require(isinstance(attribute_columns, list | tuple) and len(attribute_columns) > 0,
                f"attribute_columns must be a non-empty list of column names, got {attribute_columns!r}", ConfigError)
        require("user_id" not in attribute_columns and columns.user not in attribute_columns,
                "attribute_columns must not name the user id column", ConfigError)
    ids = ratings["user_id"].unique(maintain_order=True).to_list()
    known = set(ids)
    every = ids + [user for user in validation["user_id"].unique(maintain_order=True).to_list() if user not in known]
    training = frame.filter(frame["user_id"].is_in(ids))
    attributes = UserAttributes.fit(training, columns=attribute_columns, min_users=config.attribute_min_users,
                                    bins=config.attribute_bins)
    return attributes, AttributeTable.build(attributes, frame, every)


def _fit_rating_model(indexed: list[pl.DataFrame], catalogue: Catalogue, encoder: Encoder, config: RecommenderConfig,
                      attributes: UserAttributes | None, progress: bool) -> tuple[RatingModel, dict[str, Any]]:
    """The built-in model: item vectors from a warm start on some training users, the prior
    meta-trained on the others, then the item vectors refitted on every training user."""
    embeddings = (encoder.embed(catalogue.texts, batch_size=config.text_batch_size, normalize=True, progress=progress)
                  if config.use_text else torch.zeros(len(catalogue), 1))
    global_mean = float(indexed[0]["rating"].mean())
    warm, meta = _split_users(indexed[0], config)
    model = RatingModel(config, embeddings, global_mean, *_warm_start(warm, len(catalogue), config),
                        attribute_width=attributes.width if attributes is not None else 0)
    model.fit_text(torch.as_tensor(np.bincount(warm["item_id"].to_numpy(), minlength=len(catalogue))))
    record = train_rating_model(model, InteractionPool(meta), InteractionPool(indexed[1]), config, progress)
    if config.meta_user_share > 0:  # the prior is learned; now give the items every training user's ratings
        bias, vectors = _warm_start(indexed[0], len(catalogue), config)
        model.item_bias.copy_(bias)
        model.item_vectors.copy_(vectors)
        model.fit_text(torch.as_tensor(catalogue.popularity))
    return model, record


def _rating_levels(values: np.ndarray, most: int = 20) -> list[float] | None:
    """The distinct ratings, when there are at most ``most`` of them."""
    levels = np.unique(values)
    return [float(level) for level in levels] if len(levels) <= most else None


def _split_users(ratings: pl.DataFrame, config: RecommenderConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training users for the warm start of the item parameters, and others for meta-training the
    prior on: a user whose ratings fitted the item vectors looks easier to predict than a new one."""
    import polars as pl

    users = ratings["user_id"].unique().sort().to_list()
    if config.meta_user_share == 0:
        return ratings, ratings
    meta = split_tasks(users, (1 - config.meta_user_share, config.meta_user_share, 0.0), config.seed + 1).val
    is_meta = pl.col("user_id").is_in(list(meta))
    return ratings.filter(~is_meta), ratings.filter(is_meta)


def _warm_start(ratings: pl.DataFrame, items: int, config: RecommenderConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Item biases [M] and vectors [M, factors] from biased alternating least squares on a training log
    (:func:`~personalize.recommend.als.fit_biased_als`, its default bias shrinkages)."""
    from personalize.recommend.als import fit_biased_als

    users, positions, values = (ratings[name].to_numpy() for name in ("user_id", "item_id", "rating"))
    user_index = np.unique(users, return_inverse=True)[1].reshape(-1)
    fitted = fit_biased_als(user_index, positions, values, n_users=int(user_index.max()) + 1, n_items=items,
                            factors=config.factors, ridge=config.als_ridge, iterations=config.als_iterations,
                            seed=config.seed)
    return torch.as_tensor(fitted.item_bias), torch.as_tensor(fitted.item_factors)


def _json(document: dict[str, Any]) -> str:
    import json

    return json.dumps(document, indent=1, default=lambda value: value.item() if hasattr(value, "item") else str(value))
