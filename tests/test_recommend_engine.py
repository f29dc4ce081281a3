"""The recommender on an engine learner (``RecommenderConfig(learner="bayes")``): users are tasks of
the engine's ``bayes`` learner, meta-trained by ``pz.meta_fit``, compiled into item tables.

The oracle is the learner itself: adapting a user through the recommender's tables must give what
the learner's own ``adapt`` / ``predict`` give on the same items (same posterior, other form).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from personalize.encoder import tiny_encoder
from personalize.errors import CheckpointError, ConfigError
from personalize.learners import BayesianHead
from personalize.recommend import Recommender, RecommenderConfig
from personalize.recommend.config import EngineUsersConfig
from personalize.recommend.user_tasks import UserItems, predict_users

ITEMS = 40


def _log(seed: int = 0, users: int = 60, per_user: int = 25) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Users whose ratings follow a planted taste for items whose text says 'dark' or 'bright'."""
    rng = np.random.default_rng(seed)
    tone = rng.integers(0, 2, ITEMS)
    items = pl.DataFrame({"item_id": list(range(100, 100 + ITEMS)),
                          "text": [f"a {'dark' if t else 'bright'} film number {i}" for i, t in enumerate(tone)]})
    rows = []
    for user in range(users):
        likes_dark = rng.random() < 0.5
        for item in rng.choice(ITEMS, size=per_user, replace=False):
            liked = bool(tone[item]) == likes_dark
            rows.append((user, 100 + int(item), float(np.clip(round(3 + (1.5 if liked else -1.5) + rng.normal(0, 0.5)),
                                                               1, 5))))
    ratings = pl.DataFrame(rows, schema=["user_id", "item_id", "rating"], orient="row")
    return ratings, items


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return tiny_encoder()


@pytest.fixture(scope="module")
def fitted(encoder) -> Recommender:
    ratings, items = _log()
    config = RecommenderConfig(factors=3, learner="bayes", engine=EngineUsersConfig(steps=6, val_every=3))
    return Recommender.meta_fit(ratings, items, config=config, encoder=encoder)


def _history(item_ids: list[int], ratings: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"item_id": item_ids, "rating": ratings})


def test_the_recommender_adapts_a_user_as_its_engine_learner_does(fitted: Recommender) -> None:
    learner = fitted.learner
    assert isinstance(learner, BayesianHead) and fitted.record["steps_done"] == 6
    head = learner.gaussian_head()
    side = learner.config.head.side_features
    text_width = fitted.tables.features.shape[1] - side
    ids = fitted.catalogue.ids
    items = UserItems(list(ids), list(fitted.catalogue.texts), fitted.tables.features[:, text_width:].clone(),
                      (fitted.tables.base - head.bias).numpy(), fitted.rating_range)
    rated, values, targets = [0, 3, 5, 8], [5.0, 1.0, 4.0, 2.0], list(range(ITEMS))
    expected = predict_users(learner, items, [(np.array(rated), np.array(values))], [np.array(targets)])[0]
    got = fitted.adapt(_history([ids[p] for p in rated], values)).predict([ids[p] for p in targets])
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert np.ptp(got) > 0.1  # the user's four ratings moved the predictions apart


def test_the_catalogue_rows_are_the_adapted_text_then_the_collaborative_vector(fitted: Recommender) -> None:
    learner = fitted.learner
    assert fitted.tables.features.shape == (ITEMS, learner.model.feature_size)
    assert learner.model.feature_size == learner.encoder.hidden_size + fitted.config.factors + 2  # vector, bias, 1
    np.testing.assert_array_equal(fitted.tables.features[:, -1].numpy(), 1.0)  # the user bias column
    text = fitted.tables.features[:, : learner.encoder.hidden_size]
    np.testing.assert_allclose(text.norm(dim=1).numpy(), 1.0, atol=1e-4)  # bayes normalises the text part


def test_a_saved_engine_recommender_loads_scores_and_adds_items_the_same(fitted: Recommender, encoder,
                                                                          tmp_path) -> None:
    fitted.save(tmp_path / "rec")
    document = json.loads((tmp_path / "rec" / "recommender.json").read_text())
    assert document["format_version"] == 4 and document["config"]["learner"] == "bayes"
    assert (tmp_path / "rec" / "learner" / "learner.json").is_file()
    back = Recommender.load(tmp_path / "rec", encoder=encoder)
    history = _history([100, 103, 107], [5.0, 1.0, 4.0])
    np.testing.assert_allclose(back.adapt(history).predict(fitted.catalogue.ids),
                               fitted.adapt(history).predict(fitted.catalogue.ids), atol=1e-6)
    for name, value in fitted.learner.state_dict().items():
        torch.testing.assert_close(back.learner.state_dict()[name], value)
    back.save(tmp_path / "again")  # a loaded recommender saves its learner as it was read
    assert Recommender.load(tmp_path / "again", encoder=encoder).learner.config == fitted.learner.config

    new = pl.DataFrame({"item_id": [900, 901], "text": ["a dark film number 900", "a bright film number 901"]})
    copy = Recommender.load(tmp_path / "rec", encoder=encoder)
    copy.add_items(new)
    back.add_items(new)
    torch.testing.assert_close(copy.tables.features[-2:], back.tables.features[-2:])
    assert copy.tables.features.shape == (ITEMS + 2, fitted.tables.features.shape[1])
    hidden = fitted.learner.encoder.hidden_size
    np.testing.assert_allclose(copy.tables.features[-2:, :hidden].norm(dim=1).numpy(), 1.0, atol=1e-4)
    assert np.isfinite(copy.adapt(history).predict([900, 901])).all()


def test_a_new_item_gets_the_row_of_its_text_through_the_adapted_encoder(fitted: Recommender, encoder,
                                                                         tmp_path) -> None:
    fitted.save(tmp_path / "rec")
    copy = Recommender.load(tmp_path / "rec", encoder=encoder)
    text = fitted.catalogue.texts[4]
    copy.add_items(pl.DataFrame({"item_id": [999], "text": [text]}))
    hidden = encoder.hidden_size
    # the same text as catalogue item 4: the same adapted text features
    torch.testing.assert_close(copy.tables.features[-1, :hidden], fitted.tables.features[4, :hidden],
                               atol=1e-3, rtol=1e-3)


def test_a_saved_engine_recommender_without_its_learner_is_refused(fitted: Recommender, tmp_path) -> None:
    fitted.save(tmp_path / "rec")
    shutil.rmtree(tmp_path / "rec" / "learner")
    with pytest.raises(CheckpointError, match="learner/ folder"):
        Recommender.load(tmp_path / "rec")


def test_a_learner_with_the_head_of_other_tables_is_refused(fitted: Recommender, encoder, tmp_path) -> None:
    ratings, items = _log()
    other = Recommender.meta_fit(ratings, items, encoder=encoder, config=RecommenderConfig(
        factors=2, learner="bayes", engine=EngineUsersConfig(steps=1, val_every=1)))
    fitted.save(tmp_path / "rec")
    other.save(tmp_path / "other")
    shutil.rmtree(tmp_path / "rec" / "learner")
    shutil.copytree(tmp_path / "other" / "learner", tmp_path / "rec" / "learner")
    with pytest.raises(CheckpointError, match="does not hold the head of these tables"):
        Recommender.load(tmp_path / "rec")


def test_engine_meta_fit_keeps_checkpoints_and_resumes_from_them(encoder, tmp_path) -> None:
    ratings, items = _log(seed=1)
    config = RecommenderConfig(factors=3, learner="bayes", engine=EngineUsersConfig(steps=4, val_every=2))
    first = Recommender.meta_fit(ratings, items, config=config, encoder=encoder, checkpoint_dir=tmp_path / "run")
    assert (tmp_path / "run" / "last" / "trainer.json").is_file() and (tmp_path / "run" / "best").is_dir()
    again = Recommender.meta_fit(ratings, items, config=config, encoder=encoder, checkpoint_dir=tmp_path / "run")
    assert again.record["steps_done"] == 4
    assert [h["step"] for h in again.record["history"] if "val_loss" in h] == [0, 2, 4]  # no step trained twice
    torch.testing.assert_close(again.tables.features, first.tables.features)


def test_user_attributes_shift_the_prior_of_an_engine_recommender(encoder) -> None:
    ratings, items = _log(seed=2)
    users = pl.DataFrame({"user_id": list(range(60)), "city": ["north" if u % 2 else "south" for u in range(60)]})
    config = RecommenderConfig(factors=3, learner="bayes", engine=EngineUsersConfig(steps=2, val_every=2),
                               attribute_min_users=5)
    rec = Recommender.meta_fit(ratings, items, config=config, encoder=encoder, users=users)
    assert rec.record["attributes"]["ridge"] in rec.record["attributes"]["validation_mae"]
    assert rec.tables.attribute_weights.shape[0] == rec.tables.features.shape[1]
    cold = rec.adapt(_history([], []), attributes={"city": "north"}).predict(rec.catalogue.ids)
    assert cold.shape == (ITEMS,) and np.isfinite(cold).all()


@pytest.mark.parametrize("name", ["fomaml", "protonet"])
def test_a_learner_without_a_gaussian_head_is_refused(encoder, name: str) -> None:
    ratings, items = _log()
    config = RecommenderConfig(factors=2, learner=name, engine=EngineUsersConfig(steps=1, val_every=1))
    with pytest.raises(ConfigError, match="Gaussian head"):
        Recommender.meta_fit(ratings, items, config=config, encoder=encoder)


def test_checkpoints_need_an_engine_learner(encoder, tmp_path) -> None:
    ratings, items = _log()
    with pytest.raises(ConfigError, match="checkpoint_dir= needs an engine learner"):
        Recommender.meta_fit(ratings, items, config=RecommenderConfig(factors=2, steps=1), encoder=encoder,
                             checkpoint_dir=tmp_path)


def test_the_engine_settings_are_validated_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="EngineUsersConfig.rank"):
        EngineUsersConfig(rank=0)
    with pytest.raises(ConfigError, match="EngineUsersConfig.shots"):
        EngineUsersConfig(shots=())
    with pytest.raises(ConfigError, match="use_text=False needs learner=None"):
        RecommenderConfig(learner="bayes", use_text=False)
    config = RecommenderConfig(learner="bayes", engine=EngineUsersConfig(steps=7, shots=(2, 4)))
    again = RecommenderConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.engine.shots == (2, 4)


def test_the_batch_job_banks_engine_users_without_covariance_and_reads_them_back(fitted: Recommender, tmp_path,
                                                                                  monkeypatch) -> None:
    import personalize.jobs.users as job
    from personalize.bank import StateBank

    log = _log(seed=5, users=12, per_user=8)[0]
    log.write_parquet(tmp_path / "log.parquet")
    monkeypatch.setattr(job, "SOLVE_NUMBERS", 3 * fitted.tables.features.shape[1] ** 2)  # blocks of 3 users
    summary = job.adapt_users(tmp_path / "log.parquet", fitted, tmp_path / "bank", top=5, progress=False)
    assert summary.adapted == 12
    bank = StateBank(tmp_path / "bank", model=fitted)
    top = pl.read_parquet(tmp_path / "bank" / "top" / "*.parquet")
    for user in (0, 4, 11):
        history = log.filter(pl.col("user_id") == user).select("item_id", "rating")
        expected, stored = fitted.adapt(history), bank.get(user)
        torch.testing.assert_close(stored.posterior.mean, expected.posterior.mean, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(stored.posterior.covariance, expected.posterior.covariance, atol=1e-5, rtol=1e-4)
        assert (top.filter(pl.col("user_id") == user).sort("rank")["item_id"].to_list()
                == expected.recommend(n=5)["item_id"].to_list())
    assert bank.verify().ok
