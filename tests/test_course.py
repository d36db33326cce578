"""The course's self-checking exercises: every question's reference answer passes, its typical
wrong answers fail with their specific message, the placeholder says "not answered yet", and
nothing a student writes makes a checker raise."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

import cflearn
import cflearn.course as course
from cflearn.course import _material as M

CASES = [(lesson, f"q{k}") for lesson in course.EXERCISES for k in range(1, len(course.questions(lesson)) + 1)]


@functools.cache
def _setup(lesson: int) -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec(M.setup_code(lesson), ns)  # the notebook's own setup cell (it may train a model: once per lesson)
    return ns


def _namespace(lesson: int) -> dict[str, Any]:
    """A fresh notebook namespace after the setup cell, its questions bound to it."""
    ns = dict(_setup(lesson))
    for k, q in enumerate(course.exercise(lesson, ns), start=1):
        ns[f"q{k}"] = q
    return ns


def _answer(ns: dict[str, Any], cells: list[str]) -> None:
    for src in cells:
        exec(src, ns)


def _result(ns: dict[str, Any], label: str) -> course.Result:
    return ns[label].result()


# Answers written from each question's text (not from its checker): WRONG ones a student could
# plausibly write, each of which must be marked incorrect, and RIGHT ones in forms the question's
# words allow, each of which must be marked correct.

def _variant(template, base, **edits):
    """A model class written from ``template``: the reference parts ``base`` with some replaced."""
    return template.format(**{**base, **edits})


_ENC = "user2idx = {{u: i for i, u in enumerate({users})}}\nidx2user = {back}\n"
_SORTED = "sorted(ratings.user.unique())"
_INV = "{i: u for u, i in user2idx.items()}"

_DOT = '''class EmbeddingDot(nn.Module):
    def __init__(self, n_users, n_movies, n_factors=50):
        super().__init__()
        self.user_factors = nn.Embedding({usz})
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        {init}

    def forward(self, users, movies):
        return {out}
'''
_DOT_OK = dict(usz="n_users, n_factors", out="(self.user_factors(users) * self.movie_factors(movies)).sum(1)",
               init="self.user_factors.weight.data.uniform_(0, 0.05); self.movie_factors.weight.data.uniform_(0, 0.05)")


_dot = functools.partial(_variant, _DOT, _DOT_OK)


_BIAS = '''class DotBias(nn.Module):
    def __init__(self, n_users, n_movies, n_factors=50, y_range=(0, 5.5)):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.movie_factors = nn.Embedding(n_movies, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.movie_bias = nn.Embedding(n_movies, 1)
        self.y_range = {yr}

    def forward(self, users, movies):
        dot = (self.user_factors(users) * self.movie_factors(movies)).sum(1)
        raw = {raw}
        lo, hi = self.y_range
        return {out}
'''
_BIAS_OK = dict(yr="y_range", raw="dot + self.user_bias(users)[:, 0] + self.movie_bias(movies)[:, 0]",
                out="torch.sigmoid(raw) * (hi - lo) + lo")


_bias = functools.partial(_variant, _BIAS, _BIAS_OK)


_NN = '''class CollabNN(nn.Module):
    def __init__(self, user_sz, item_sz, y_range=(0, 5.5), n_act=100):
        super().__init__()
        self.user_factors = nn.Embedding(*user_sz)
        self.item_factors = nn.Embedding(*item_sz)
        self.layers = nn.Sequential({layers})
        self.y_range = {yr}

    def forward(self, users, items):
        x = torch.cat([{cat}], dim=1)
        x = self.layers(x)
        lo, hi = self.y_range
        return {out}
'''
_NN_OK = dict(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1)", yr="y_range",
              cat="self.user_factors(users), self.item_factors(items)", out="torch.sigmoid(x[:, 0]) * (hi - lo) + lo")


_nn = functools.partial(_variant, _NN, _NN_OK)


def _fn(name, args, body):
    return f"def {name}({args}):\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


_emb = functools.partial(_fn, "emb_sz", "n_cat")
_params = functools.partial(_fn, "dot_bias_params", "n_users, n_items, n_factors")
_sim = functools.partial(_fn, "most_similar", "factors, i, n")
_pca = functools.partial(_fn, "pca2", "factors")
_year = functools.partial(_fn, "release_year", "title")
_genres = functools.partial(_fn, "genre_matrix", "genres")


def _content(body):
    return _fn("content_similar", "item, onehot, n=5", "v = onehot.loc[item].to_numpy(dtype=float)\n"
               "m = onehot.to_numpy(dtype=float)\n" + body)


def _rmse(body):
    return _fn("rmse", "pred, target", "p, t = np.asarray(pred, dtype=float), np.asarray(target, dtype=float)\n"
               + body)


def _prec(per_user, keep="rel"):
    return _fn("precision_at_k", "recommended, relevant, k",
               f"scores = []\nfor recs, rel in zip(recommended, relevant):\n    if {keep}:\n"
               f"        scores.append({per_user})\nreturn float(np.mean(scores))")


_split = functools.partial(_fn, "split_by_time", "df, valid_frac")
_unseen = functools.partial(_fn, "recommend_unseen", "scores, seen, n")


_TOP = "rows = learn.model.i_bias.weight[1:, 0].detach().argsort(descending=True)[:5] + 1\n"
_COS = "sims = nn.CosineSimilarity(dim=1)(factors, factors[i][None])\n"

WRONG: dict[tuple[int, str], list[str]] = {
    (0, "q1"): [
        _ENC.format(users="ratings.user.unique()", back=_INV),  # not in sorted ID order
        _ENC.format(users=_SORTED, back=_INV).replace("enumerate(sorted(ratings.user.unique()))",
                                                       "enumerate(sorted(ratings.user.unique()), 1)"),
        _ENC.format(users=_SORTED, back="user2idx"),  # not inverted
        _ENC.format(users="ratings.user", back=_INV),  # one row per rating
        _ENC.format(users="sorted(ratings.item.unique())", back=_INV),  # items, not users
        _ENC.format(users=_SORTED, back="list(ratings.user.unique())"),  # a list in the wrong order
        _ENC.format(users="sorted(ratings.user.unique(), reverse=True)", back=_INV),
        _ENC.format(users="sorted(ratings.user.astype(str).unique())", back=_INV),  # text keys
    ],
    (0, "q2"): [
        _dot(out="self.user_factors(users) * self.movie_factors(movies)"),  # no sum
        _dot(out="self.user_factors(users) @ self.movie_factors(movies).T"),  # every pair
        _dot(init="self.user_factors.weight.data.normal_(); self.movie_factors.weight.data.normal_()"),
        _dot(init="pass"),  # no init at all
        _dot(init="nn.init.zeros_(self.user_factors.weight); nn.init.zeros_(self.movie_factors.weight)"),  # all equal
        _dot(init="self.user_factors.weight.data.uniform_(0, 0.5); self.movie_factors.weight.data.uniform_(0, 0.5)"),
        _dot(out="(self.user_factors(users) * self.movie_factors(movies)).sum(0)"),
        _dot(out="(self.user_factors(users) * self.user_factors(movies)).sum(1)"),  # users' table for movies
        _dot(out="(self.user_factors(users) * self.movie_factors(movies)).mean(1)"),
        _dot(usz="n_factors, n_users"),
    ],
    (0, "q3"): [
        "y_range = (ratings.rating.min(), ratings.rating.max())",
        "y_range = (0, 10)",
        "y_range = (ratings.rating.max() + 0.5, ratings.rating.min() - 0.5)",
        "y_range = (ratings.rating.min() - 0.5, ratings.rating.max())",
        "y_range = (ratings.rating.min(), ratings.rating.max() + 0.5)",
        "y_range = ratings.rating.max() + 0.5",
        "y_range = (ratings.rating.mean() - 1, ratings.rating.mean() + 1)",
        "y_range = (ratings.rating.min() - 0.001, ratings.rating.max() + 0.001)",
    ],
    (0, "q4"): [
        _bias(out="raw"),
        _bias(out="torch.sigmoid(raw)"),
        _bias(raw="dot"),
        _bias(raw="dot + self.user_bias(users)[:, 0]"),
        _bias(raw="dot + self.movie_bias(movies)[:, 0]"),
        _bias(raw="dot + self.user_bias(users) + self.movie_bias(movies)"),  # (B, B)
        _bias(out="torch.sigmoid(raw) * (hi - lo)"),  # no + lo
        _bias(out="torch.sigmoid(raw) * hi"),
        _bias(yr="(0, 5.5)"),  # ignores the y_range it is given
        _bias(raw="dot", out="torch.sigmoid(raw) * (hi - lo) + lo + self.user_bias(users)[:, 0] + "
                             "self.movie_bias(movies)[:, 0]"),  # biases after the sigmoid
        _bias(raw="dot + self.user_bias(movies)[:, 0] + self.movie_bias(movies)[:, 0]"),
        _bias(out="torch.sigmoid(raw) * (lo - hi) + hi"),  # upside down
    ],
    (2, "q1"): [
        _TOP.replace("descending=True", "descending=False") + "top_biased = data.items.decode(rows.numpy()).tolist()",
        "top_biased = data.train.groupby('item').rating.mean().nlargest(5).index.tolist()",
        _TOP + "top_biased = rows.tolist()",  # row numbers
        "rows = learn.model.i_bias.weight[1:, 0].detach().abs().argsort(descending=True)[:5] + 1\n"
        "top_biased = data.items.decode(rows.numpy()).tolist()",
        _TOP + "top_biased = data.items.decode(rows.numpy()).tolist()[::-1]",  # smallest first
        _TOP.replace(" + 1\n", "\n") + "top_biased = data.items.decode(rows.numpy()).tolist()",  # rows off by one
        "top_biased = data.train.item.value_counts().index[:5].tolist()",
        _TOP.replace("[:5]", "[:10]") + "top_biased = data.items.decode(rows.numpy()).tolist()",
        "rows = learn.model.i_weight.weight[1:].detach().norm(dim=1).argsort(descending=True)[:5] + 1\n"
        "top_biased = data.items.decode(rows.numpy()).tolist()",  # the longest factor vectors
    ],
    (2, "q2"): [
        _sim("sims = factors @ factors[i]\norder = [j for j in sims.argsort(descending=True).tolist() if j != i]\n"
             "return order[:n]"),
        _sim(_COS + "return sims.argsort(descending=True).tolist()[:n]"),  # itself included
        _sim(_COS + "order = [j for j in sims.argsort().tolist() if j != i]\nreturn order[:n]"),
        _sim("x = factors - factors.mean(1, keepdim=True)\n"  # Pearson
             "sims = nn.CosineSimilarity(dim=1)(x, x[i][None])\n"
             "order = [j for j in sims.argsort(descending=True).tolist() if j != i]\nreturn order[:n]"),
        _sim("d = (factors - factors[i]).norm(dim=1)\norder = [j for j in d.argsort().tolist() if j != i]\n"
             "return order[:n]"),
        _sim(_COS + "return sims.argsort(descending=True).tolist()[1:n + 1]"),  # assumes row i comes first
        _sim(_COS + "order = [j for j in sims.abs().argsort(descending=True).tolist() if j != i]\nreturn order[:n]"),
        _sim(_COS + "order = sims.argsort(descending=True)\nreturn [float(sims[j]) for j in order if j != i][:n]"),
        _sim(_COS + "order = [j for j in sims.argsort(descending=True).tolist() if j != i]\nreturn order[:n - 1]"),
    ],
    (2, "q3"): [
        _pca("U, S, Vh = torch.linalg.svd(factors, full_matrices=False)\nreturn factors @ Vh[:2].T"),  # not centered
        _pca("x = factors - factors.mean(0)\nU, S, V = torch.pca_lowrank(x, q=2, center=False)\n"
             "return x @ V"),  # a randomized SVD with q = 2: inexact
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\nreturn Vh[:2]"),
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return x @ Vh[-2:].T"),
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\nreturn U[:, :2]"),
        _pca("x = (factors - factors.mean(0)) / factors.std(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return x @ Vh[:2].T"),
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return x @ Vh[:, :2]"),
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return x @ Vh[[1, 0]].T"),  # the components swapped
        _pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return (x @ Vh[:2].T).abs()"),
        _pca("x = factors - factors.mean(1, keepdim=True)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
             "return x @ Vh[:2].T"),
    ],
    (3, "q1"): [
        _emb("return round(1.6 * n_cat ** 0.56)"),
        _emb("return min(600, int(1.6 * n_cat ** 0.56))"),
        _emb("return min(600, round(1.6 * n_cat ** 0.5))"),
        _emb("return max(600, round(1.6 * n_cat ** 0.56))"),
        _emb("import math\nreturn min(600, math.ceil(1.6 * n_cat ** 0.56))"),
        _emb("return min(600, 1.6 * n_cat ** 0.56)"),
        _emb("return min(600, round(1.6 * n_cat) ** 0.56)"),
        _emb("return min(500, round(1.6 * n_cat ** 0.56))"),
        _emb("return min(n_cat, round(1.6 * n_cat ** 0.56))"),
    ],
    (3, "q2"): [
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.Linear(n_act, 1)"),  # no ReLU
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.BatchNorm1d(n_act), nn.ReLU(), nn.Linear(n_act, 1)"),
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1), nn.ReLU()"),
        _nn(yr="(0, 5.5)"),  # ignores y_range
        _nn(out="torch.sigmoid(x[:, 0]) * (hi - lo)"),  # no + lo
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.Tanh(), nn.Linear(n_act, 1)"),
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], 100), nn.ReLU(), nn.Linear(100, 1)"),  # n_act ignored
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.Sigmoid(), nn.Linear(n_act, 1)"),
        _nn(cat="self.user_factors(users), self.user_factors(users)",
            layers="nn.Linear(2 * user_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1)"),
        _nn(out="x[:, 0]"),  # no y_range
        _nn(out="torch.sigmoid(x[:, 0]) * hi"),
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], 1)"),  # no hidden layer
    ],
    (3, "q3"): [
        _params("return (n_users + n_items) * n_factors"),
        _params("return n_users * (n_factors + 1)"),
        _params("return n_users * n_items"),
        _params("return (n_users + n_items) * n_factors + 1"),
        _params("return (n_users + n_items) * n_factors + n_users"),
        _params("return (n_users + n_items) * (n_factors + 2)"),
        _params("return (n_users + n_items + 2) * (n_factors + 1)"),
        _params("return n_users * n_items * n_factors"),
    ],
    (4, "q1"): [
        _year("m = re.search(r'(\\d{4})', title)\nreturn int(m.group(1)) if m else None"),
        _year("m = re.search(r'\\((\\d{4})\\)\\s*$', title)\nreturn m.group(1) if m else None"),  # text
        _year("m = re.search(r'\\((\\d{4})\\)$', title)\nreturn int(m.group(1)) if m else None"),
        _year("m = re.search(r'\\((\\d{4})\\)', title)\nreturn int(m.group(1)) if m else None"),  # first in brackets
        _year("m = re.search(r'(\\d{4})\\)\\s*$', title)\nreturn int(m.group(1)) if m else None"),  # ranges
        _year("try:\n    return int(title.strip()[-5:-1])\nexcept ValueError:\n    return None"),
        _year("m = re.search(r'\\((\\d{4})\\)\\s*$', title)\nreturn int(m.group(1)) if m else 0"),
        _year("return int(re.findall(r'\\d{4}', title)[-1])"),
        _year("m = re.match(r'\\((\\d{4})\\)\\s*$', title)\nreturn int(m.group(1)) if m else None"),
    ],
    (4, "q2"): [
        _genres("return genres.str.get_dummies(sep='|')"),  # keeps (no genres listed)
        _genres("return pd.get_dummies(genres).astype(int)"),  # no split
        _genres("return genres.str.get_dummies(sep=',').drop(columns='(no genres listed)', errors='ignore')"),
        _genres("g = genres[genres != '(no genres listed)']\nreturn g.str.get_dummies(sep='|')"),  # drops rows
        _genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)', errors='ignore')"
                ".reset_index(drop=True)"),
        _genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)')"),  # fails without it
        _genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)', errors='ignore')"
                ".to_numpy()"),
        _genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)', errors='ignore').T"),
        _genres("names = ['Action', 'Comedy', 'Drama']\n"
                "return pd.DataFrame({g: genres.str.contains(g).astype(int) for g in names})"),
    ],
    (4, "q3"): [
        _content("sims = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"
                 "return pd.Series(sims, index=onehot.index).nlargest(n).index.tolist()"),  # itself included
        _content("return pd.Series(m @ v, index=onehot.index).drop(item).nlargest(n).index.tolist()"),
        _content("sims = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"
                 "return pd.Series(sims, index=onehot.index).drop(item).nsmallest(n).index.tolist()"),
        _content("inter = m @ v\nunion = m.sum(1) + v.sum() - inter\n"  # Jaccard
                 "return pd.Series(inter / union, index=onehot.index).drop(item).nlargest(n).index.tolist()"),
        _content("d = np.linalg.norm(m - v, axis=1)\n"
                 "return pd.Series(d, index=onehot.index).drop(item).nsmallest(n).index.tolist()"),
        _content("sims = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"  # assumes item comes first
                 "return pd.Series(sims, index=onehot.index).nlargest(n + 1).index[1:].tolist()"),
        _content("sims = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"  # positions, not labels
                 "order = [j for j in np.argsort(-sims) if onehot.index[j] != item]\nreturn order[:n]"),
        _content("sims = np.array([np.corrcoef(row, v)[0, 1] for row in m])\n"  # Pearson
                 "return pd.Series(sims, index=onehot.index).drop(item).nlargest(n).index.tolist()"),
        _content("sims = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"
                 "return pd.Series(sims, index=onehot.index).drop(item).nlargest(n).index.tolist()[::-1]"),
    ],
    (4, "q4"): [
        "new_user_recs = cflearn.recommend(learn, 10**6, n=5)",
        "new_user_recs = cflearn.recommend(learn, None, n=5, features={'group': 'g2'})",
        "new_user_recs = cflearn.recommend(learn, None, n=10, features={'group': 'g1'})",
        "new_user_recs = cflearn.recommend(learn, syn.ratings.user.iloc[0], n=5)",  # a user it knows
        "new_user_recs = cflearn.recommend_all(learn, n=5).head(5)",  # the first known user's list
        "new_user_recs = syn.ratings.item.value_counts().index[:5].tolist()",
        "new_user_recs = cflearn.recommend(learn, None, n=5, features={'group': 'g1'})['item'].tolist()[::-1]",
        "new_user_recs = cflearn.recommend(learn, None, n=5, features={'group': 'g1'}).iloc[:4]",
    ],
    (5, "q1"): [
        _rmse("return np.mean((p - t) ** 2)"),
        _rmse("return np.mean(np.abs(p - t))"),
        _rmse("return np.sqrt(np.sum((p - t) ** 2))"),
        _rmse("return abs(np.mean(p - t))"),
        _rmse("return np.std(p - t)"),
        _rmse("return np.sqrt(np.sum((p - t) ** 2) / (len(p) - 1))"),
        _rmse("return np.sqrt(np.mean((p - t) ** 2)) / len(p)"),
        _rmse("return np.sqrt(abs(np.mean(p ** 2 - t ** 2)))"),
    ],
    (5, "q2"): [
        _prec("sum(r in rel for r in recs[:k]) / len(recs[:k])"),
        _prec("sum(r in rel for r in recs[:k]) / len(rel)"),  # recall
        _prec("sum(r in rel for r in recs[:k]) / k", keep="True"),  # no skipping
        _prec("sum(r in rel for r in recs) / k"),  # not cut at k
        _prec("sum(r in rel for r in recs[:k - 1]) / k"),  # off by one
        _prec("sum(r in rel for r in recs[:k + 1]) / k"),
        _prec("float(any(r in rel for r in recs[:k]))"),  # hit rate
        _fn("precision_at_k", "recommended, relevant, k",
            "return float(sum(sum(r in rel for r in recs[:k]) / k for recs, rel in zip(recommended, relevant) "
            "if rel))"),  # a sum, not a mean
        _prec("sum(r in rel for r in recs[1:k + 1]) / k"),
    ],
    (5, "q3"): [
        _split("ordered = df.sample(frac=1, random_state=0)\nn_valid = round(len(df) * valid_frac)\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[:cut], ordered.iloc[cut:]"),
        _split("ordered = df.sort_values('timestamp', ascending=False)\nn_valid = round(len(df) * valid_frac)\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[:cut], ordered.iloc[cut:]"),
        _split("ordered = df.sort_values('timestamp')\nn_valid = round(len(df) * (1 - valid_frac))\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[:cut], ordered.iloc[cut:]"),
        _split("ordered = df.sort_values('timestamp')\nn_valid = round(len(df) * valid_frac)\n"
               "return ordered.iloc[:-n_valid], ordered.iloc[-n_valid:]"),  # n_valid = 0
        _split("ordered = df.sort_values('timestamp')\nn_valid = round(len(df) * valid_frac)\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[cut:], ordered.iloc[:cut]"),  # (valid, train)
        _split("n_valid = round(len(df) * valid_frac)\ncut = len(df) - n_valid\n"
               "return df.iloc[:cut], df.iloc[cut:]"),  # not sorted
        _split("ordered = df.sort_values(['user', 'timestamp'])\n"  # the last ratings of each user
               "last = ordered.groupby('user').cumcount(ascending=False) < "
               "ordered.groupby('user').user.transform('size') * valid_frac\n"
               "return ordered[~last], ordered[last]"),
        _split("ordered = df.sort_values('rating')\nn_valid = round(len(df) * valid_frac)\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[:cut], ordered.iloc[cut:]"),
        _split("ordered = df.sort_values('timestamp')\nn_valid = round(len(df) * valid_frac)\n"
               "cut = len(df) - n_valid\nreturn ordered.iloc[:cut], ordered.iloc[cut - 1:]"),  # a row in both
    ],
    (5, "q4"): [
        _unseen("return scores.nlargest(n).index.tolist()"),  # seen items kept
        _unseen("return scores.drop(list(seen)).nsmallest(n).index.tolist()"),
        _unseen("return scores.drop(list(seen)).nlargest(n).tolist()"),  # scores, not IDs
        _unseen("return scores.drop(list(seen)).sort_values()[-n:].index.tolist()"),  # worst of the best first
        _unseen("return sorted(scores.drop(list(seen)).nlargest(n).index)"),  # sorted by ID
        _unseen("return scores.drop(list(seen)).nlargest(n - 1).index.tolist()"),
        _unseen("return scores.drop(list(seen)).nlargest(n + 1).index.tolist()"),
        _unseen("return scores.drop(list(seen)).nlargest(n)"),  # a Series of scores
        _unseen("return [i for i in scores.sort_values(ascending=False).index[:n] if i not in seen]"),
    ],
}

# Wrong answers that fixed examples let through (round three of the course review): generated
# inputs (ties, empty lists, values outside the scale, timestamps of other digit counts, batches of
# one row) and the contract (inputs unchanged, types as the question states, models that train)
# find each of them.
_FIXED_EXAMPLES_MISSED = {
    (0, "q1"): ["user2idx = {u: float(i) for i, u in enumerate(sorted(ratings.user.unique()))}\n"
                "idx2user = {i: u for u, i in user2idx.items()}",  # float rows
                "user2idx = {u: i for i, u in enumerate(sorted(ratings.user.unique()))}\n"
                "idx2user = {i: float(u) for u, i in user2idx.items()}",
                "user2idx = {u: int(u) - 1 for u in ratings.user.unique()}\n"  # IDs taken for rows
                "idx2user = {i: u for u, i in user2idx.items()}"],
    (0, "q2"): [_dot(out="(self.user_factors.weight.data[users] * self.movie_factors.weight.data[movies]).sum(1)"),
                _dot(out="(self.user_factors(users) * self.movie_factors(movies).detach()).sum(1)"),
                _dot(out="(self.user_factors(users) * self.movie_factors(movies)).sum(1, keepdim=True).squeeze()")],
    (0, "q4"): [_bias(raw="dot + self.user_bias.weight.data[users, 0] + self.movie_bias(movies)[:, 0]"),
                _bias(raw="dot.squeeze() + self.user_bias(users).squeeze() + self.movie_bias(movies).squeeze()")],
    (2, "q2"): [_sim("factors /= factors.norm(dim=1, keepdim=True)\nsims = factors @ factors[i]\n"
                     "order = [j for j in sims.argsort(descending=True).tolist() if j != i]\nreturn order[:n]"),
                _sim(_COS + "order = sims.argsort(descending=True)\nreturn order[order != i][:n].float()"),
                _sim(_COS + "return sims.argsort(descending=True)[1:n + 1].tolist()")],  # row i not always first
    (2, "q3"): [_pca("factors -= factors.mean(0)\nU, S, Vh = torch.linalg.svd(factors, full_matrices=False)\n"
                     "return factors @ Vh[:2].T")],
    (3, "q1"): [_emb("return min(600.0, round(1.6 * n_cat ** 0.56))"),
                _emb("return min(600, float(round(1.6 * n_cat ** 0.56)))")],
    (3, "q2"): [_nn(cat="self.user_factors.weight.data[users], self.item_factors(items)"),
                _nn(cat="self.user_factors(users), self.item_factors(items).detach()")],
    (3, "q3"): [_params("return float((n_users + n_items) * (n_factors + 1))")],
    (4, "q1"): [_year("match = re.search(r'\\((\\d{4})\\)\\s*$', title)\n"
                      "return float(match.group(1)) if match else None"),
                _year("match = re.search(r'\\((\\d+)\\)\\s*$', title)\nreturn int(match.group(1)) if match else None"),
                _year("match = re.search(r'\\((\\d{4})\\)\\s*$', title)\nreturn int(match.group(1)) if match else 0")],
    (4, "q2"): [_genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)', errors='ignore')"
                        ".astype(float)"),
                _genres("return genres.str.get_dummies(sep='|').drop(columns='(no genres listed)', errors='ignore')"
                        ".sort_index()")],
    (4, "q3"): [_content("s = m @ v / (np.abs(m).sum(1) * np.abs(v).sum())\n"  # L1 lengths
                         "return pd.Series(s, index=onehot.index).drop(item).nlargest(n).index.tolist()"),
                _content("s = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"
                         "return pd.Series(s, index=onehot.index).nlargest(n + 1).index.tolist()[1:]")],
    (5, "q1"): [_rmse("return np.sqrt(np.mean((np.clip(p, 0.5, 5) - t) ** 2))"),  # clipped to a scale
                _rmse("return np.sqrt(np.mean((p - t) ** 2)) if len(p) > 1 else abs(p[0] - t[0]) / 2")],
    (5, "q2"): [_prec("sum(r in rel for r in recs[:k]) / k", keep="recs"),  # skips empty lists, not empty sets
                _prec("len(set(recs[:k]) & rel) / min(k, len(recs))", keep="rel and recs")],
    (5, "q3"): [_split("ordered = df.sort_values('timestamp', key=lambda s: s.astype(str))\n"  # as text
                       "cut = len(df) - round(len(df) * valid_frac)\nreturn ordered.iloc[:cut], ordered.iloc[cut:]"),
                _split("df.sort_values('timestamp', inplace=True)\n"  # changes the caller's table
                       "cut = len(df) - round(len(df) * valid_frac)\nreturn df.iloc[:cut], df.iloc[cut:]"),
                _split("t = df.timestamp.quantile(1 - valid_frac)\n"  # a threshold: ties move the cut
                       "return df[df.timestamp < t], df[df.timestamp >= t]"),
                _split("ordered = df.sort_values('timestamp').drop_duplicates()\n"  # duplicate rows lost
                       "cut = len(ordered) - round(len(ordered) * valid_frac)\n"
                       "return ordered.iloc[:cut], ordered.iloc[cut:]")],
    (5, "q4"): [_unseen("return [float(i) for i in scores.drop(list(seen)).nlargest(n).index]"),
                _unseen("scores.drop(list(seen), inplace=True)\nreturn scores.nlargest(n).index.tolist()"),
                _unseen("s = scores.drop(list(seen))\nreturn s[s > s.nlargest(n).min()].index.tolist() + "
                        "s[s == s.nlargest(n).min()].index.tolist()[:1]")],  # ties at the cut
}
for _key, _answers in _FIXED_EXAMPLES_MISSED.items():
    WRONG[_key] = WRONG[_key] + _answers


RIGHT: dict[tuple[int, str], list[str]] = {
    (0, "q1"): [_ENC.format(users=_SORTED, back=_SORTED),  # idx2user as a list
                _ENC.format(users=_SORTED, back="tuple(user2idx)"),
                "ids = sorted(ratings.user.unique())\nuser2idx = dict(zip(ids, range(len(ids))))\n"
                "idx2user = dict(enumerate(ids))",
                "import numpy as np\nidx2user = np.unique(ratings.user)\n"
                "user2idx = {u: i for i, u in enumerate(idx2user)}"],
    (0, "q2"): [_dot(out="torch.einsum('bf,bf->b', self.user_factors(users), self.movie_factors(movies))"),
                _dot(out="(self.user_factors(users) * self.movie_factors(movies)).sum(dim=1, keepdim=True)"),
                _dot(init="nn.init.uniform_(self.user_factors.weight, 0, 0.05); "
                          "nn.init.uniform_(self.movie_factors.weight, 0, 0.05)")],
    (0, "q3"): ["y_range = [ratings.rating.min() - 0.5, ratings.rating.max() + 0.5]",
                "y_range = (float(ratings.rating.min()) - 0.4, float(ratings.rating.max()) + 0.6)"],
    (0, "q4"): ["from fastai.layers import sigmoid_range\n" + _bias(out="sigmoid_range(raw, lo, hi)"),
                _bias(raw="dot[:, None] + self.user_bias(users) + self.movie_bias(movies)"),  # (B, 1), as fastbook's
                _bias(raw="dot + self.user_bias(users).squeeze(1) + self.movie_bias(movies).view(-1)"),
                _bias(out="(hi - lo) * torch.sigmoid(raw) + lo")],
    (2, "q1"): ["import numpy as np\nb = learn.model.i_bias.weight.detach()[:, 0].numpy().copy()\nb[0] = -np.inf\n"
                "top_biased = list(data.items.decode(np.argsort(-b)[:5]))",
                "top_biased = tuple(data.items.decode((learn.model.i_bias.weight[1:, 0].detach()"
                ".topk(5).indices + 1).numpy()))"],
    (2, "q2"): [_sim("f = factors / factors.norm(dim=1, keepdim=True)\nsims = f @ f[i]\nsims[i] = -2\n"
                     "return sims.argsort(descending=True)[:n]"),
                _sim("import numpy as np\nf = factors.numpy()\n"
                     "s = f @ f[i] / (np.linalg.norm(f, axis=1) * np.linalg.norm(f[i]))\n"
                     "return [int(j) for j in np.argsort(-s, kind='stable') if j != i][:n]")],
    (2, "q3"): [_pca("x = factors - factors.mean(0)\nU, S, Vh = torch.linalg.svd(x, full_matrices=False)\n"
                     "return U[:, :2] * S[:2]"),
                _pca("import numpy as np\nx = factors.numpy() - factors.numpy().mean(0)\n"
                     "w, v = np.linalg.eigh(x.T @ x)\nreturn x @ v[:, ::-1][:, :2]"),
                _pca("from sklearn.decomposition import PCA\nreturn PCA(2).fit_transform(factors.numpy())"),
                _pca("U, S, V = torch.pca_lowrank(factors)\nreturn (factors - factors.mean(0)) @ V[:, :2]")],
    (3, "q1"): [_emb("return round(min(600, 1.6 * n_cat ** 0.56))"),
                _emb("from fastai.tabular.model import emb_sz_rule\nreturn emb_sz_rule(n_cat)")],
    (3, "q2"): [  # fastbook's own CollabNN: a (batch, 1) output and fastai's sigmoid_range
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Dropout(0.5), nn.Linear(n_act, 1)"),
        "from fastai.layers import sigmoid_range\n"
        "class CollabNN(nn.Module):\n"
        "    def __init__(self, user_sz, item_sz, y_range=(0, 5.5), n_act=100):\n"
        "        super().__init__()\n"
        "        self.user_factors = nn.Embedding(*user_sz)\n"
        "        self.item_factors = nn.Embedding(*item_sz)\n"
        "        self.layers = nn.Sequential(nn.Linear(user_sz[1]+item_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1))\n"
        "        self.y_range = y_range\n"
        "    def forward(self, x_users, x_items):\n"
        "        embs = self.user_factors(x_users), self.item_factors(x_items)\n"
        "        x = self.layers(torch.cat(embs, dim=1))\n"
        "        return sigmoid_range(x, *self.y_range)\n",
        _nn(cat="self.item_factors(items), self.user_factors(users)",
            layers="nn.Linear(item_sz[1] + user_sz[1], n_act), nn.ReLU(), nn.Linear(n_act, 1)"),
        _nn(layers="nn.Linear(user_sz[1] + item_sz[1], n_act), nn.ReLU(), nn.Dropout(0.2), nn.Linear(n_act, 1)"),
        # the output layer defined first, the network written out in forward
        "class CollabNN(nn.Module):\n"
        "    def __init__(self, user_sz, item_sz, y_range=(0, 5.5), n_act=100):\n"
        "        super().__init__()\n"
        "        self.out = nn.Linear(n_act, 1)\n"
        "        self.hidden = nn.Linear(user_sz[1] + item_sz[1], n_act)\n"
        "        self.users, self.items = nn.Embedding(*user_sz), nn.Embedding(*item_sz)\n"
        "        self.y_range = y_range\n"
        "    def forward(self, u, i):\n"
        "        x = torch.relu(self.hidden(torch.cat([self.users(u), self.items(i)], dim=1)))\n"
        "        lo, hi = self.y_range\n"
        "        return torch.sigmoid(self.out(x)).squeeze(-1) * (hi - lo) + lo\n",
    ],
    (3, "q3"): [_params("return n_users * n_factors + n_items * n_factors + n_users + n_items")],
    (4, "q1"): [_year("found = re.findall(r'\\((\\d{4})\\)\\s*$', title)\nreturn int(found[0]) if found else None"),
                _year("t = title.rstrip()\n"
                      "if len(t) >= 6 and t[-6] == '(' and t[-1] == ')' and t[-5:-1].isdigit():\n"
                      "    return int(t[-5:-1])\nreturn None")],
    (4, "q2"): [_genres("from sklearn.preprocessing import MultiLabelBinarizer\n"
                        "lists = [[g for g in s.split('|') if g != '(no genres listed)'] for s in genres]\n"
                        "mlb = MultiLabelBinarizer()\n"
                        "return pd.DataFrame(mlb.fit_transform(lists), index=genres.index, columns=mlb.classes_)"),
                _genres("out = genres.str.get_dummies(sep='|').astype(bool)\n"
                        "return out[[c for c in out.columns if c != '(no genres listed)']]")],
    (4, "q3"): [_content("s = m @ v / (np.linalg.norm(m, axis=1) * np.linalg.norm(v))\n"
                         "sims = pd.Series(s, index=onehot.index)\n"
                         "return list(sims[sims.index != item].sort_values(ascending=False).index[:n])"),
                _content("from sklearn.metrics.pairwise import cosine_similarity\n"
                         "s = pd.Series(cosine_similarity(m, v[None])[:, 0], index=onehot.index).drop(item)\n"
                         "return s.nlargest(n).index")],
    (4, "q4"): ["new_user_recs = cflearn.recommend(learn, None, features={'group': 'g1'}, n=5)",
                "new_user_recs = cflearn.recommend(learn, None, n=5, features={'group': 'g1'})['item'].tolist()"],
    (5, "q1"): [_rmse("return float(np.sqrt(((p - t) ** 2).sum() / len(p)))"),
                _rmse("return np.linalg.norm(p - t) / np.sqrt(len(p))")],
    (5, "q2"): [_fn("precision_at_k", "recommended, relevant, k",
                    "per_user = [len(set(recs[:k]) & set(rel)) / k for recs, rel in zip(recommended, relevant) "
                    "if len(rel) > 0]\nreturn sum(per_user) / len(per_user)")],
    (5, "q3"): [_split("ordered = df.sort_values('timestamp', kind='stable')\n"
                       "n_train = len(df) - int(round(valid_frac * len(df)))\n"
                       "return ordered.head(n_train), ordered.tail(len(df) - n_train)"),
                _split("ordered = df.sort_values('timestamp').reset_index(drop=True)\n"
                       "cut = len(df) - int(len(df) * valid_frac)\nreturn ordered[:cut], ordered[cut:]")],
    (5, "q4"): [_unseen("s = scores[~scores.index.isin(seen)]\nreturn list(s.sort_values(ascending=False).index[:n])"),
                _unseen("return scores.drop(list(seen)).nlargest(n).index")],
}


@pytest.mark.parametrize("lesson,label", CASES, ids=[f"ex{a}-{b}" for a, b in CASES])
def test_wrong_answers_are_never_certified(lesson, label):
    """At least six wrong answers of different kinds per question, written from its text: each is
    marked incorrect with a message; each correct form the question allows is marked correct."""
    wrong, right = WRONG[(lesson, label)], RIGHT[(lesson, label)]
    assert len(wrong) >= 6 and right
    for src in wrong:
        ns = _namespace(lesson)
        _answer(ns, [src])
        got = _result(ns, label)
        assert got.status == "incorrect" and got.message, (src, got)
    for src in right:
        ns = _namespace(lesson)
        _answer(ns, [src])
        got = _result(ns, label)
        assert got.status == "correct", (src, got)


@pytest.mark.parametrize("lesson,label", CASES, ids=[f"ex{a}-{b}" for a, b in CASES])
def test_question_feedback(lesson, label, capsys):
    cells = M.answer_cells(lesson)[label]
    ns = _namespace(lesson)
    assert _result(ns, label).status == "not answered"  # nothing run yet
    _answer(ns, [M.strip_solutions(src) for src in cells])  # the student's cell as handed out
    unanswered = _result(ns, label)
    assert unanswered.status == "not answered" and "____" in unanswered.message
    _answer(ns, cells)
    right = _result(ns, label)
    assert right.status == "correct", right.message
    cls = course.questions(lesson)[int(label[1:]) - 1]
    assert len(cls.wrong) >= 2, f"{cls.__name__}: at least two typical wrong answers"
    for old, new, words in cls.wrong:
        ns = _namespace(lesson)
        wrong_cells = [src.replace(old, new) for src in cells] if old else [new]
        assert not old or any(old in src for src in cells), f"{cls.__name__}: {old!r} is not in the solution"
        _answer(ns, wrong_cells)
        got = _result(ns, label)
        assert got.status == "incorrect" and words in got.message, (old, new, got)
    ns[label].check()
    ns[label].hint()
    ns[label].hint(2)
    ns[label].solution()
    out = capsys.readouterr().out
    assert f"{label} - Incorrect" in out and f"{label} - Hint: {cls.hint_text}" in out
    assert cls.hint_more and cls.hint_more != cls.hint_text and f"{label} - Hint 2: {cls.hint_more}" in out
    assert M.solutions(lesson)[label].strip().splitlines()[0] in out and "### BEGIN" not in out


def test_generated_inputs_give_the_same_smallest_counterexample_every_time():
    """A wrong answer that fixed examples miss is refused with the smallest input Hypothesis finds
    (derandomized: the same verdict on every run) and what went wrong on it."""
    answer = _split("ordered = df.sort_values('timestamp', key=lambda s: s.astype(str))\n"
                    "cut = len(df) - round(len(df) * valid_frac)\nreturn ordered.iloc[:cut], ordered.iloc[cut:]")
    messages = []
    for _ in range(2):
        ns = _namespace(5)
        _answer(ns, [answer])
        got = _result(ns, "q3")
        assert got.status == "incorrect"
        messages.append(got.message)
    assert messages[0] == messages[1]
    assert "smallest such input found: split_by_time(" in messages[0]
    assert "1000000000" in messages[0] and "999999999" in messages[0]  # 10 digits sort before 9 as text


def test_an_answer_that_changes_its_input_is_refused_by_name():
    ns = _namespace(2)
    _answer(ns, [_sim("factors /= factors.norm(dim=1, keepdim=True)\nsims = factors @ factors[i]\n"
                      "return [j for j in sims.argsort(descending=True).tolist() if j != i][:n]")])
    got = _result(ns, "q2")
    assert got.status == "incorrect" and "changes its input `factors`" in got.message


def test_a_model_no_gradient_reaches_is_refused():
    ns = _namespace(0)
    _answer(ns, [_dot(out="(self.user_factors.weight.data[users] * self.movie_factors.weight.data[movies]).sum(1)")])
    got = _result(ns, "q2")
    assert got.status == "incorrect" and "no gradient" in got.message


def test_a_student_bug_is_a_message_not_a_traceback():
    ns = _namespace(0)
    exec("class EmbeddingDot:\n    def __init__(self, *a):\n        raise KeyError('oops')\n", ns)
    got = ns["q2"].result()
    assert got.status == "incorrect" and "raised KeyError" in got.message
    exec("y_range = 'high'", ns)
    assert "pair of numbers" in ns["q3"].result().message


def test_stub_rules():
    src = ("x = 1\n### BEGIN SOLUTION\na, b = f(1,\n    2)\nprint(a)\nreturn a + b\n### END SOLUTION\n"
           "    ### BEGIN SOLUTION\n    g(2)\n    ### END SOLUTION\n")
    assert M.strip_solutions(src) == "x = 1\na, b = ____\nreturn ____\n    ____"
    with pytest.raises(cflearn.DataError, match="without"):
        M.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_student_version_has_no_solutions_and_no_outputs():
    src = json.loads(M.exercise_path(0).read_text())
    student = M.student_version(src)
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "uniform_(0, 0.05)" not in text and "____" in text
    assert len(student["cells"]) == len(src["cells"]) and "BEGIN SOLUTION" in json.dumps(src)


def test_unknown_lesson_is_a_config_error():
    with pytest.raises(cflearn.ConfigError, match="exercises exist for lessons 0, 2, 3, 4, 5"):
        course.exercise(1, {})


def test_agree_never_calls_an_answer_wrong_for_want_of_inputs():
    """A strategy that draws nothing (every input filtered out) finds no disagreement: it is not a
    verdict against the answer; one that draws finds the smallest disagreement."""
    from hypothesis import strategies as st

    from cflearn.course._differential import agree
    from cflearn.course._question import Wrong

    nothing = st.tuples(st.integers(0, 10)).filter(lambda t: False)
    agree("double", lambda x: x + 1, lambda x: 2 * x, nothing, lambda got, want, args: None if got == want else "no")
    with pytest.raises(Wrong, match=r"differs; the smallest such input found: double\(0\)"):
        agree("double", lambda x: x + 1, lambda x: 2 * x, st.tuples(st.integers(0, 10)),
              lambda got, want, args: None if got == want else "differs")


def test_the_checks_build_the_setup_cells_table_themselves():
    """Exercise 0's checks use their own copy of the table the setup cell loads (equal to it), so a
    notebook that swaps `ratings` for a one-row table still has to encode the setup cell's users."""
    import pandas as pd

    from cflearn.course.ex0 import setup_ratings

    pd.testing.assert_frame_equal(setup_ratings(), _setup(0)["ratings"])
    ns = _namespace(0)
    _answer(ns, ["ratings = ratings.head(1)\nuser2idx = {u: i for i, u in enumerate(sorted(ratings.user.unique()))}\n"
                 "idx2user = {i: u for u, i in user2idx.items()}"])
    got = _result(ns, "q1")
    assert got.status == "incorrect" and "missing from `user2idx`" in got.message, got
