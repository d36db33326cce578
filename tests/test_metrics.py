"""Hand-computed fixtures pin every metric (see the arithmetic in the comments)."""

import math

import pytest

from cflearn import metrics as m

RECS = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
REL = [{2, 4, 99}, {5}, set()]
# user A: hits at ranks 2 and 4 of 3 relevant; user B: hit at rank 1 of 1 relevant; user C: nothing relevant
L3, L5 = 1 / math.log2(3), 1 / math.log2(5)
A = dict(precision=2 / 4, recall=2 / 3, ndcg=(L3 + L5) / (1 + L3 + 0.5), map=(1 / 2 + 2 / 4) / 3, mrr=1 / 2, hit_rate=1)
B = dict(precision=1 / 4, recall=1, ndcg=1, map=1, mrr=1, hit_rate=1)


@pytest.mark.parametrize("name", ["precision", "recall", "ndcg", "map", "mrr", "hit_rate"])
def test_ranking_metrics_at_4(name):
    fn = getattr(m, f"{name}_at_k")
    assert fn(RECS, REL, 4) == pytest.approx((A[name] + B[name]) / 2)  # user C skipped
    assert fn(RECS, REL, 4, empty="zero") == pytest.approx((A[name] + B[name]) / 3)
    assert m.ranking_metrics(RECS, REL, 4)[f"{name}@4"] == pytest.approx((A[name] + B[name]) / 2)


def test_values_written_out():
    got = m.ranking_metrics(RECS, REL, 4)
    assert got == pytest.approx({"precision@4": 0.375, "recall@4": 0.833333, "ndcg@4": 0.749095, "map@4": 0.666667,
                                 "mrr@4": 0.75, "hit_rate@4": 1.0}, abs=1e-6)


def test_cutoff_2():
    got = m.ranking_metrics(RECS, REL, 2)
    # A: [1, 2] -> hit at rank 2; IDCG over min(2, 3) = 2 ranks; AP = P@2 / 2
    assert got["precision@2"] == pytest.approx((0.5 + 0.5) / 2)
    assert got["recall@2"] == pytest.approx((1 / 3 + 1) / 2)
    assert got["ndcg@2"] == pytest.approx((L3 / (1 + L3) + 1) / 2)
    assert got["map@2"] == pytest.approx((0.5 / 2 + 1) / 2)
    assert got["mrr@2"] == pytest.approx((0.5 + 1) / 2)


def test_coverage_popularity_and_edges():
    assert m.catalog_coverage(RECS, n_items=20, n=2) == pytest.approx(6 / 20)
    assert m.catalog_coverage(RECS, n_items=24) == pytest.approx(12 / 24)
    assert m.popularity_bias(RECS, {1: 0.5, 2: 0.1}, n=2) == pytest.approx(0.6 / 6)
    assert math.isnan(m.ndcg_at_k([[1]], [set()], 1))  # nobody has relevant items
    assert m.ndcg_at_k([[1, 2]], [{1, 2}], 2) == pytest.approx(1.0)  # perfect ranking
    with pytest.raises(ValueError):
        m.precision_at_k([[1]], [{1}, {2}], 1)
    with pytest.raises(ValueError):
        m.precision_at_k([[1]], [{1}], 0)


def test_rating_metrics():
    assert m.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert m.mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert math.isnan(m.rmse([], []))
    with pytest.raises(ValueError):
        m.rmse([1, 2], [1])


def test_a_registered_metric_reaches_evaluate_the_cli_the_report_and_metrics_json(tmp_path, capsys):
    """Adding a metric is one function and one registry line: evaluate computes it for every row,
    `cflearn fit` prints it, and the run's metrics.json and report hold it."""
    import json

    import cflearn
    from cflearn.cli import main

    def top_hit(hits, n_relevant, n):  # the user's first recommendation is relevant
        return float(len(hits) > 0 and hits[0] > 0)

    m.register(m.Metric("top_hit", user=top_hit, summary=6))
    try:
        src = tmp_path / "r.csv"
        cflearn.datasets.synthetic(n_users=60, n_items=40, density=0.3, seed=0).ratings.to_csv(src, index=False)
        assert main(["fit", str(src), "--user", "user", "--item", "item", "--rating", "rating", "--preset", "fast",
                     "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
        header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("validation"))
        assert header.split()[-1] == "top_hit@10", header
        methods = json.loads((tmp_path / "run" / "metrics.json").read_text())["evaluation"]["methods"]
        assert all("top_hit@10" in row for row in methods.values())
        for row in methods.values():  # a hit at the top is a hit
            assert row["top_hit@10"] is None or row["top_hit@10"] <= row["hit_rate@10"]
        assert "top_hit@10" in (tmp_path / "run" / "report.html").read_text()
        with pytest.raises(cflearn.ConfigError, match="registered already"):
            m.register(m.Metric("top_hit", user=top_hit))
    finally:
        m.unregister("top_hit")
    assert "top_hit" not in m.METRICS and m.summary_columns(10) == ["rmse", "mae", "ndcg@10", "recall@10",
                                                                    "coverage@10"]
