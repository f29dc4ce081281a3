"""What implicit, LensKit and RecBole users expect of a recommender: batched ``recommend`` returning
arrays, ``similar_items``, and ratings as a scipy CSR users x items matrix.

Each is checked against the path it must equal: ``recommend`` row by row against
``UserModel.recommend``, ``similar_items`` against a brute-force numpy cosine, and every CSR input
against the frame of the same entries; the item and user blocks are made small so that the
block merging is exercised. Same small synthetic log and tiny encoder as tests/test_recommend.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from scipy import sparse

import personalize as pz
from personalize.encoder import tiny_encoder
from personalize.errors import ConfigError, SchemaError
from personalize.recommend import Recommender, RecommenderConfig
from personalize.recommend import recommender as recommender_module
from personalize.recommend.sparse_input import ratings_frame
from tests.test_recommend import ACTION, ALL_ITEMS, CONFIG, DRAMA, synthetic_log


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    return synthetic_log()


@pytest.fixture(scope="module")
def rec(data) -> Recommender:
    ratings, items = data
    return Recommender.meta_fit(ratings, items, config=CONFIG, encoder=tiny_encoder(seed=0))


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Blocks of 7 items and chunks of 3 users: every merge across blocks and chunks is used."""
    monkeypatch.setattr(recommender_module, "ITEM_BLOCK", 7)
    monkeypatch.setattr(recommender_module, "RECOMMEND_CHUNK", 3)


def histories(data, users=range(10)) -> pl.DataFrame:
    """The first ``3 + user`` ratings of each of ``users``: histories of different lengths."""
    ratings = data[0].select("user_id", "item_id", "rating")
    return pl.concat([ratings.filter(pl.col("user_id") == user).head(3 + user) for user in users])


def as_matrix(frame: pl.DataFrame, item_ids: list, user_ids: list) -> sparse.csr_matrix:
    """A users x items CSR matrix of a ratings frame, columns in ``item_ids`` order, rows in ``user_ids``'."""
    column = {item: j for j, item in enumerate(item_ids)}
    row = {user: i for i, user in enumerate(user_ids)}
    return sparse.csr_matrix((frame["rating"].to_numpy(), ([row[u] for u in frame["user_id"]],
                                                           [column[i] for i in frame["item_id"]])),
                             shape=(len(user_ids), len(item_ids)))


# --- recommend: many users at once ------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"exclude_seen": False}, {"rating_weight": 0.0}, {"rating_weight": 4.0}])
def test_recommend_equals_each_users_own_recommend_item_for_item(rec, data, small_blocks, options) -> None:
    users = rec.adapt_many(histories(data))
    item_ids, scores = rec.recommend(users, n=6, **options)
    assert item_ids.shape == scores.shape == (10, 6) and item_ids.dtype == np.int64
    for row, user in enumerate(users.values()):
        wanted = user.recommend(n=6, **options)
        assert item_ids[row].tolist() == wanted["item_id"].to_list(), f"user {user.user}"
        np.testing.assert_allclose(scores[row], wanted["score"].to_numpy(), rtol=1e-5, atol=1e-5)
    if options.get("exclude_seen", True):
        assert not any(set(item_ids[row].tolist()) & set(np.asarray(ALL_ITEMS)[user.seen].tolist())
                       for row, user in enumerate(users.values()))


def test_recommend_takes_a_list_in_its_order_and_a_user_with_no_rating(rec, data) -> None:
    users = list(rec.adapt_many(histories(data, users=[4, 1, 7])).values())
    with pytest.warns(UserWarning, match="meta-learned prior"):
        users.append(rec.adapt(pl.DataFrame({"item_id": [], "rating": []}, schema={"item_id": pl.Int64,
                                                                                   "rating": pl.Float64})))
    item_ids, scores = rec.recommend(users, n=5)
    reversed_ids, reversed_scores = rec.recommend(users[::-1], n=5)
    assert item_ids.tolist() == reversed_ids[::-1].tolist()
    np.testing.assert_array_equal(scores, reversed_scores[::-1])
    assert item_ids[3].tolist() == users[3].recommend(n=5)["item_id"].to_list()   # the prior's ranking


def test_a_user_with_fewer_unrated_items_than_n_gets_padding(rec, data) -> None:
    ratings = data[0].select("user_id", "item_id", "rating")
    almost_all = pl.DataFrame({"user_id": [0] * 40, "item_id": ALL_ITEMS[:40], "rating": [3.0] * 40})
    users = rec.adapt_many(pl.concat([almost_all, ratings.filter(pl.col("user_id") == 1)]))
    item_ids, scores = rec.recommend(users, n=10)
    assert users[0].recommend(n=10).height == 4
    assert item_ids[0, :4].tolist() == users[0].recommend(n=10)["item_id"].to_list()
    assert item_ids[0, 4:].tolist() == [-1] * 6 and np.isneginf(scores[0, 4:]).all()
    assert np.isfinite(scores[1]).all()
    assert rec.recommend(users, n=1000).item_ids.shape == (2, len(ALL_ITEMS))   # cut to the catalogue


def test_recommend_with_string_item_ids_pads_with_empty_strings(data) -> None:
    ratings, items = data
    named = {"ratings": ratings.with_columns(pl.col("item_id").cast(pl.Utf8)),
             "items": items.with_columns(pl.col("item_id").cast(pl.Utf8))}
    rec = Recommender.meta_fit(named["ratings"], named["items"], config=RecommenderConfig(factors=4, steps=5,
                               val_every=5, users_per_step=16), encoder=tiny_encoder(seed=0))
    full = pl.DataFrame({"item_id": [str(item) for item in ALL_ITEMS[:-2]], "rating": [3.0] * (len(ALL_ITEMS) - 2)})
    item_ids, scores = rec.recommend([rec.adapt(full)], n=4)
    assert item_ids[0, :2].tolist() == rec.adapt(full).recommend(n=4)["item_id"].to_list()
    assert item_ids[0, 2:].tolist() == ["", ""] and np.isneginf(scores[0, 2:]).all()


def test_recommend_on_the_shipped_engine_recommender_equals_its_users_recommend() -> None:
    """Kernel-form posteriors (the bayes learner's ~400 features) through the same batched path."""
    shipped = pz.load("movielens")
    users = shipped.adapt_many(pl.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [1, 50, 181, 7, 100],
                                             "rating": [5.0, 4.0, 1.0, 2.0, 5.0]}))
    item_ids, scores = shipped.recommend(users, n=10)
    for row, user in enumerate(users.values()):
        wanted = user.recommend(n=10)
        assert item_ids[row].tolist() == wanted["item_id"].to_list()
        np.testing.assert_allclose(scores[row], wanted["score"].to_numpy(), rtol=1e-5, atol=1e-5)


def test_recommend_refuses_what_is_not_an_adapted_user_of_this_recommender(rec, data, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"recommend takes adapted users .* got a DataFrame; for a ratings log "
                                          r"call rec.recommend\(rec.adapt_many\(ratings\), n\)"):
        rec.recommend([histories(data)], n=3)
    other = Recommender.load(rec.save(tmp_path / "copy"))
    with pytest.raises(ConfigError, match="user 3 was adapted by another recommender"):
        rec.recommend(other.adapt_many(histories(data, users=[3])), n=3)
    with pytest.raises(ConfigError, match="n must be an int >= 1, got 0"):
        rec.recommend([], n=0)
    with pytest.raises(ConfigError, match="rating_weight must be >= 0"):
        rec.recommend([], n=3, rating_weight=-1.0)
    empty_ids, empty_scores = rec.recommend({}, n=3)
    assert empty_ids.shape == empty_scores.shape == (0, 3)


# --- similar_items ---------------------------------------------------------------------------------------


def brute_force_neighbours(features: np.ndarray, position: int, n: int) -> tuple[list[int], np.ndarray]:
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[position]
    cosine[position] = -np.inf
    order = np.argsort(-cosine, kind="stable")[:n]
    return order.tolist(), cosine[order]


def assert_same_neighbours(found: np.ndarray, cosines: np.ndarray, wanted_ids: list, wanted: np.ndarray) -> None:
    """The same items with the same cosines, in the same order except among items whose cosines to the
    query tie to 1e-12 (the tiny encoder's items of one kind are nearly collinear: cosines 1 - 1e-14)."""
    np.testing.assert_allclose(cosines, wanted, rtol=0, atol=1e-12)
    for k, (item, other) in enumerate(zip(found.tolist(), wanted_ids)):
        assert item == other or abs(cosines[k] - wanted[wanted_ids.index(other)]) <= 1e-12, (k, item, other)


def test_similar_items_is_the_brute_force_cosine_of_the_taste_features(rec, small_blocks) -> None:
    features = rec.tables.features.double().numpy()
    assert np.all(features[:, 0] == 1.0)  # the built-in model's constant column: not part of the likeness
    ids = np.asarray(rec.catalogue.ids)
    for item in (ACTION[0], DRAMA[5], ALL_ITEMS[-1]):
        found, cosines = rec.similar_items(item, n=8)
        positions, wanted = brute_force_neighbours(features[:, 1:], rec.catalogue.indices([item])[0], 8)
        assert item not in found.tolist() and len(set(found.tolist())) == 8
        assert_same_neighbours(found, cosines, ids[positions].tolist(), wanted)
        taste = features[:, 1:] / np.linalg.norm(features[:, 1:], axis=1, keepdims=True)
        exact = taste[rec.catalogue.indices(found.tolist())] @ taste[rec.catalogue.indices([item])[0]]
        np.testing.assert_allclose(cosines, exact, rtol=0, atol=1e-12)  # each item's own cosine
    same_kind = rec.similar_items(ACTION[0], n=5).item_ids.tolist()
    assert sum(item in ACTION + [140, 141] for item in same_kind) >= 4   # action films resemble action films


def test_similar_items_for_a_list_equals_one_call_per_item(rec, small_blocks) -> None:
    queries = [ACTION[3], DRAMA[0], 142]
    item_ids, cosines = rec.similar_items(queries, n=4)
    assert item_ids.shape == cosines.shape == (3, 4)
    for row, item in enumerate(queries):
        alone = rec.similar_items(item, n=4)
        assert_same_neighbours(item_ids[row], cosines[row], alone.item_ids.tolist(), alone.scores)
    np.testing.assert_array_equal(rec.similar_items(np.asarray(queries), n=4).item_ids, item_ids)
    assert rec.similar_items(ACTION[0], n=500).item_ids.shape == (len(ALL_ITEMS) - 1,)   # all but itself


def test_similar_items_on_the_engine_recommender_reads_every_feature_column() -> None:
    shipped = pz.load("movielens")
    found, cosines = shipped.similar_items(50, n=5)
    positions, wanted = brute_force_neighbours(shipped.tables.features.double().numpy(),
                                               shipped.catalogue.indices([50])[0], 5)
    assert_same_neighbours(found, cosines, np.asarray(shipped.catalogue.ids)[positions].tolist(), wanted)


def test_similar_items_refuses_unknown_items_and_bad_n(rec) -> None:
    with pytest.raises(SchemaError, match=r"similar_items: 1 item id\(s\) not in the catalogue, e.g. \[999\]; pass "
                                          r"ids of rec.catalogue.ids \(add new items with add_items first\)"):
        rec.similar_items(999)
    with pytest.raises(SchemaError, match=r"2 item id\(s\) not in the catalogue, e.g. \[998, 999\]"):
        rec.similar_items([ACTION[0], 998, 999])
    with pytest.raises(ConfigError, match="n must be an int >= 1, got 0"):
        rec.similar_items(ACTION[0], n=0)


# --- ratings as a CSR matrix ----------------------------------------------------------------------------


def test_adapt_many_from_csr_equals_the_frame_of_the_same_entries(rec, data) -> None:
    frame = histories(data)
    order = np.random.default_rng(1).permutation(len(ALL_ITEMS))
    item_ids = [ALL_ITEMS[j] for j in order]                 # columns in an order of the caller's own
    user_ids = [f"user-{u}" for u in range(10)]
    named = frame.with_columns(pl.col("user_id").map_elements(lambda u: f"user-{u}", return_dtype=pl.Utf8))
    matrix = as_matrix(named, item_ids, user_ids)
    position = {item: j for j, item in enumerate(item_ids)}
    in_matrix_order = named.with_columns(column=pl.col("item_id").replace_strict(position)).sort(
        "user_id", "column", maintain_order=True).drop("column")  # user-0 ... user-9 sort as their numbers here
    from_frame = rec.adapt_many(in_matrix_order)
    from_matrix = rec.adapt_many(matrix, item_ids=item_ids, user_ids=user_ids)
    assert list(from_matrix) == user_ids == list(from_frame)
    for user in user_ids:
        assert torch.equal(from_matrix[user].posterior.mean, from_frame[user].posterior.mean)
        assert from_matrix[user].seen.tolist() == from_frame[user].seen.tolist()
        np.testing.assert_array_equal(from_matrix[user].predict(ALL_ITEMS), from_frame[user].predict(ALL_ITEMS))


def test_the_default_columns_are_the_catalogue_and_an_empty_row_is_a_user_with_no_rating(rec, data) -> None:
    frame = histories(data, users=[0, 1])
    matrix = sparse.vstack([as_matrix(frame, rec.catalogue.ids, [0, 1]),
                            sparse.csr_matrix((1, len(ALL_ITEMS)))]).tocsr()
    with pytest.warns(UserWarning, match=r"1 user\(s\) have no item in the catalogue, e.g. \[2\]"):
        users = rec.adapt_many(matrix)
    assert list(users) == [0, 1, 2] and len(users[2].seen) == 0
    in_matrix_order = frame.sort("user_id", pl.col("item_id").replace_strict(
        {item: j for j, item in enumerate(rec.catalogue.ids)}))
    assert torch.equal(users[1].posterior.mean, rec.adapt_many(in_matrix_order)[1].posterior.mean)


def test_adapt_from_a_csr_row_equals_adapt_from_its_frame(rec, data) -> None:
    history = histories(data, users=[5])
    row = as_matrix(history, rec.catalogue.ids, [5])
    from_frame = rec.adapt(history.drop("user_id").sort(pl.col("item_id").replace_strict(
        {item: j for j, item in enumerate(rec.catalogue.ids)})))
    from_row = rec.adapt(row, user=5)
    assert torch.equal(from_row.posterior.mean, from_frame.posterior.mean) and from_row.user == 5
    with pytest.raises(SchemaError, match="adapt takes one user's history: the ratings matrix has 2 rows; pass one "
                                          r"row \(matrix\[u\]\) or use adapt_many for many users"):
        rec.adapt(sparse.vstack([row, row]).tocsr())


def test_meta_fit_from_csr_equals_meta_fit_from_the_frame(data) -> None:
    ratings, items = data
    config = RecommenderConfig(factors=4, steps=10, val_every=5, users_per_step=16)
    user_ids = ratings["user_id"].unique(maintain_order=True).to_list()
    matrix = as_matrix(ratings, ALL_ITEMS, user_ids)
    in_matrix_order = ratings.sort("user_id", "item_id").select("user_id", "item_id", "rating")  # ALL_ITEMS is sorted
    from_frame = Recommender.meta_fit(in_matrix_order, items, config=config, encoder=tiny_encoder(seed=0))
    from_matrix = Recommender.meta_fit(matrix, items, config=config, encoder=tiny_encoder(seed=0), user_ids=user_ids)
    for name, value in from_frame.tables.to_dict().items():
        assert torch.equal(from_matrix.tables.to_dict()[name], value), name
    assert from_matrix.rating_weight == from_frame.rating_weight
    with pytest.raises(SchemaError, match="validation= takes a frame"):
        Recommender.meta_fit(matrix, items, config=config, validation=matrix, encoder=tiny_encoder(seed=0))


@pytest.mark.parametrize(("matrix", "message"), [
    (sparse.csr_matrix(np.ones((2, 5))), "the ratings matrix has 5 columns but item_ids names 44 items: pass "
                                         "item_ids= with one id per column, in column order"),
    (sparse.coo_matrix(np.ones((2, 44))),
     "a ratings matrix must be scipy CSR (csr_matrix or csr_array), got a coo_matrix: convert it with "
     "matrix.tocsr() (which sums entries stored twice)"),
    (sparse.csr_matrix(([4.0, np.nan], ([0, 1], [2, 3])), shape=(2, 44)),
     "the ratings matrix stores 1 NaN or infinite value(s), e.g. at row 1, column 3: every stored entry is a "
     "rating; leave unrated entries out of the matrix"),
    (sparse.csr_matrix(([4.0, 0.0], ([0, 1], [2, 3])), shape=(2, 44)),
     "the ratings matrix stores 1 explicit zero(s), e.g. at row 1, column 3: every stored entry is a rating and 0 "
     "is outside the range [1, 5] seen in meta-training; if they mean 'not rated', drop them with "
     "matrix.eliminate_zeros()"),
    (sparse.csr_matrix((np.array([4.0, 2.0]), np.array([3, 3]), np.array([0, 2, 2])), shape=(2, 44)),
     "the ratings matrix stores 1 entr(y/ies) twice, e.g. row 0 (user 0), column 3 (item 103)"),
])
def test_bad_matrices_are_refused_naming_the_problem_and_the_fix(rec, matrix, message) -> None:
    with pytest.raises(SchemaError) as refused:
        rec.adapt_many(matrix)
    assert message in str(refused.value)


def test_matrix_options_are_checked(rec, data) -> None:
    matrix = sparse.csr_matrix(([4.0], ([0], [2])), shape=(2, 44))
    with pytest.raises(SchemaError, match="the ratings matrix has 2 rows but user_ids names 3 users: pass user_ids= "
                                          "with one id per row, in row order"):
        rec.adapt_many(matrix, user_ids=["a", "b", "c"])
    with pytest.raises(SchemaError, match="user_ids names a user more than once"):
        rec.adapt_many(matrix, user_ids=["a", "a"])
    with pytest.raises(ConfigError, match=r"item_ids= name the columns and rows of a scipy CSR ratings matrix"):
        rec.adapt_many(histories(data), item_ids=ALL_ITEMS)
    with pytest.raises(ConfigError, match=r"item_ids and user_ids= name"):
        rec.adapt_many(histories(data), item_ids=ALL_ITEMS, user_ids=[1])
    assert len(ratings_frame(sparse.csr_array(matrix), ALL_ITEMS)[0]) == 1   # csr_array is CSR too
    with pytest.warns(UserWarning) as caught:  # unknown column ids are unknown items, as in a frame
        users = rec.adapt_many(matrix, item_ids=ALL_ITEMS[:2] + ["new"] + ALL_ITEMS[3:])
    assert [str(warning.message).split(":")[0] for warning in caught] == [
        "skipped 1 item id(s) not in the catalogue, e.g. ['new']",
        "2 user(s) have no item in the catalogue, e.g. [0, 1]"]
    assert len(users[0].seen) == 0


def test_no_recommend_module_imports_scipy_at_import_time() -> None:
    """scipy is imported inside the converter only, so the core import does not need it."""
    for path in Path(recommender_module.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        names = [alias.name for node in top_level for alias in node.names] + \
                [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
        assert not any(name.split(".")[0] == "scipy" for name in names), path.name


def test_adapt_many_shows_progress_over_the_users_when_asked(rec, data, monkeypatch, capsys) -> None:
    monkeypatch.setattr(recommender_module, "ADAPT_CHUNK", 4)  # 10 users: chunks of 4, 4 and 2
    quiet = rec.adapt_many(histories(data))
    assert "adapt users" not in capsys.readouterr().err
    shown = rec.adapt_many(histories(data), progress=True)
    bar = capsys.readouterr().err
    assert "adapt users" in bar and "10/10" in bar
    assert list(shown) == list(quiet)
    assert all(np.array_equal(shown[user].predict(ALL_ITEMS[:5]), quiet[user].predict(ALL_ITEMS[:5]))
               for user in quiet)
