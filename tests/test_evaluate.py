import numpy as np
import pytest

import cflearn
from cflearn.evaluation._evaluate import bias_baseline


def test_evaluate_table_model_and_baselines(trained, synth_data):
    table = cflearn.evaluate(trained, n=5)
    assert list(table.index) == ["model (fast)", "global mean", "user+item bias", "most popular", "EASE", "item-kNN"]
    assert table.loc[["EASE", "item-kNN"], ["rmse", "mae"]].isna().all().all()  # they predict no ratings
    table = table.drop(index=["EASE", "item-kNN"])
    for col in ["rmse", "mae", "precision@5", "recall@5", "ndcg@5", "map@5", "mrr@5", "hit_rate@5", "coverage@5",
                "popularity@5"]:
        assert col in table.columns
    r = table["rmse"]
    assert r["model (fast)"] < r["user+item bias"] < r["global mean"]
    assert table.notna().all().all()  # every metric for every method
    # random ranking (the global mean ties everywhere) is the chance level: the popular list beats it
    assert table.loc["global mean", "ndcg@5"] < table.loc["most popular", "ndcg@5"]
    assert table.loc["global mean", "coverage@5"] > table.loc["most popular", "coverage@5"]  # a new order per user
    # personal lists cover more of the catalogue than one list for everybody, and are less popularity-biased
    assert table.loc["model (fast)", "coverage@5"] > table.loc["most popular", "coverage@5"]
    assert table.loc["model (fast)", "popularity@5"] < table.loc["most popular", "popularity@5"]
    assert 0 < table.loc["model (fast)", "ndcg@5"] <= 1
    assert table.attrs["relevance"] == 4.0
    # the global-mean row is exactly the RMSE of the training mean
    v = synth_data.valid["rating"].to_numpy()
    assert r["global mean"] == pytest.approx(np.sqrt(((v - synth_data.global_mean) ** 2).mean()))


def test_bias_baseline_recovers_planted_biases(synth):
    data = cflearn.from_df(synth)
    u, i = data.codes[data.train_idx, 0], data.codes[data.train_idx, 1]
    mu, bu, bi = bias_baseline(u, i, data.values[data.train_idx].astype(float), len(data.users), len(data.items))
    truth = synth.truth
    planted = truth["item_bias"][np.searchsorted(truth["item_ids"], data.items.ids)]
    assert np.corrcoef(bi[1:], planted)[0, 1] > 0.8
    assert bu[0] == 0 and bi[0] == 0


def test_evaluate_needs_data_for_loaded_models(trained, synth_data, tmp_path):
    model = cflearn.load(cflearn.save(trained, tmp_path / "m.safetensors"))
    with pytest.raises(cflearn.ConfigError, match="pass data="):
        cflearn.evaluate(model)
    a = cflearn.evaluate(model, synth_data, n=5)
    b = cflearn.evaluate(trained, n=5)
    assert np.allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), equal_nan=True)


def test_large_validation_sets_rank_a_seeded_sample_of_users(trained, monkeypatch):
    from cflearn.evaluation import _evaluate

    full = cflearn.evaluate(trained)
    assert full.attrs["users_sampled"] is False and full.attrs["users_ranked"] > 20
    monkeypatch.setattr(_evaluate, "MAX_RANKED_USERS", 20)
    a, b = cflearn.evaluate(trained), cflearn.evaluate(trained)
    assert a.attrs["users_sampled"] is True and a.attrs["users_ranked"] <= 20
    assert a.equals(b)  # the same sample each time
    assert a["rmse"].equals(full["rmse"])  # rating metrics still use every validation row


def test_cli_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    from cflearn import cli
    from cflearn.cli import fit

    def boom(args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 69077951280 bytes.\nmore")

    monkeypatch.setattr(fit, "run", boom)
    assert cli.main(["fit", "x.csv", "--user", "u", "--item", "i", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cflearn: error: out of memory (") and err.count("\n") == 1


def test_each_relevant_item_with_no_training_row_counts_once(tmp_path):
    """A user's relevant validation items that training never saw can never be listed: each is its own miss
    (they used to collapse into one, the unknown item)."""
    import pandas as pd

    rows = [(u, i, 5.0 if (u + i) % 3 else 2.0, t) for u in range(1, 41) for t, i in enumerate(range(1, 16))]
    # user 1's three latest ratings: two items nobody else rated (cold), one known item, all relevant
    rows += [(1, 901, 5.0, 100), (1, 902, 4.5, 101), (1, 16, 5.0, 102)]
    rows += [(u, 16, 3.0, 0) for u in range(2, 41)]
    data = cflearn.from_df(pd.DataFrame(rows, columns=["user", "item", "rating", "ts"]), "user", "item", "rating",
                           "ts", split="leave_last", n_last=3)
    learn = cflearn.fit(cflearn.collab_learner(data, "fast", epochs=1, progress=False))
    table = cflearn.evaluate(learn, n=10, baselines=["most popular"])
    assert table.attrs["cold_relevant"] == 2
    # by hand: user 1's relevant items are 16 and the two cold ones; the chart lists 16 (not seen by user 1)
    valid = data.valid
    counts = data.train.groupby("item").size()
    hits, recalls = 0, []
    for user, group in valid.groupby("user"):
        seen = set(data.train.loc[data.train.user == user, "item"])
        chart = [i for i in counts.sort_values(ascending=False, kind="stable").index if i not in seen][:10]
        relevant = set(group.loc[group.rating >= 4, "item"])
        if relevant:
            recalls.append(len(relevant & set(chart)) / len(relevant))
            hits += user == 1 and 16 in chart
    assert hits == 1
    assert table.loc["most popular", "recall@10"] == pytest.approx(np.mean(recalls))


def test_metrics_and_baselines_of_your_own(trained):
    """evaluate is open: a metric with cflearn.metrics' signature becomes a column for every row, and
    a (name, baseline) pair becomes a row, without private imports. A baseline that scores every
    item by its number of training ratings is the most-popular chart: the same lists, the same numbers."""
    import torch

    def popular(users, items, n_users, n_items):
        counts = torch.from_numpy(np.bincount(items, minlength=n_items)).double()
        return lambda rows: counts.expand(len(rows), n_items)

    def first_hit(recommended, relevant, n):  # share of users whose first item is relevant
        scored = [(recs[:1], rel) for recs, rel in zip(recommended, relevant) if rel]
        return sum(bool(set(r) & rel) for r, rel in scored) / len(scored)

    table = cflearn.evaluate(trained, n=5, baselines=["most popular", ("my popular", popular)],
                             metrics={"first_hit": first_hit, "p": cflearn.metrics.precision_at_k})
    assert list(table.index) == ["model (fast)", "most popular", "my popular"]
    assert table.loc["my popular", ["rmse", "mae"]].isna().all()  # a list baseline predicts no ratings
    ranking = ["ndcg@5", "recall@5", "coverage@5", "p@5", "first_hit@5"]
    assert table.loc["my popular", ranking].tolist() == pytest.approx(table.loc["most popular", ranking].tolist())
    assert table["p@5"].tolist() == pytest.approx(table["precision@5"].tolist())
    assert 0 <= table.loc["model (fast)", "first_hit@5"] <= 1
    with pytest.raises(cflearn.ConfigError, match="new name"):
        cflearn.evaluate(trained, baselines=[("EASE", popular)])
    with pytest.raises(cflearn.ConfigError, match=r"shape \(\d+, 3\)"):
        cflearn.evaluate(trained, baselines=[("bad", lambda *a: (lambda rows: torch.zeros(len(rows), 3)))])
    with pytest.raises(cflearn.ConfigError, match="metrics maps names"):
        cflearn.evaluate(trained, baselines=False, metrics={"x": 3})
