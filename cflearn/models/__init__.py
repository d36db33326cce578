"""The networks (forward only) and the one model contract every kind answers.

cflearn's models are fastai's: :class:`DotBias` has fastai's ``EmbeddingDotBias`` parameters,
initialisation, forward and ``state_dict`` keys (written here in plain PyTorch, so that loading a
model and recommending never import fastai), and :class:`NN` is fastai's ``EmbeddingNN`` (imported
on first use). :class:`HybridDotBias` adds user and item side features. Each of them implements
the contract (:class:`Contract`) that predict / recommend / fold-in / evaluate / save rely on, so
those never branch on the class:

- ``forward`` on an ``(n, 2)`` batch of (user index, item index) -> ``(n,)`` scores;
- :meth:`Contract.tables`: user and item ``(vectors, bias)`` in the space the model really scores
  with (hybrid items include their features), or ``None`` (scored by forward passes);
- :meth:`Contract.output`: the output transform (the sigmoid into ``y_range``, :func:`squash`);
  ``score_kind`` says what a score means (``"rating"``, or ``"ranking"``: an unnormalised
  preference, comparable only between items of one user);
- :meth:`Contract.embeddings` and :meth:`Contract.trained_rows`: the tables training updates and
  which of their rows it reaches (row L2, cold rows, sparse gradients);
- :meth:`Contract.config`: JSON to rebuild the model without pickle (:func:`cflearn.kinds.build_model`).

Any other ``nn.Module`` taking the ``(n, 2)`` batch (a student's ``EmbeddingDot``) is answered by
:class:`Foreign`: scored by forward passes, no tables, saved as weights whose class is needed to load.
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..train._distributed import unwrap

__all__ = [
    "Contract",
    "Foreign",
    "Tables",
    "DotBias",
    "HybridDotBias",
    "NN",
    "Ranker",
    "ItemItem",
    "Dual",
    "rating_head",
    "ranking_head",
    "item_item_head",
    "TableView",
    "squash",
    "contract",
    "ScoreKind",
]

ScoreKind = Literal["rating", "ranking"]
TableKey = tuple[int, str]


class Tables(NamedTuple):
    """User and item tables such that a pair's raw score is ``users[u] @ items[i] + user_bias[u] + item_bias[i]``."""

    users: torch.Tensor
    user_bias: torch.Tensor
    items: torch.Tensor
    item_bias: torch.Tensor


def squash(raw: torch.Tensor, y_range: tuple[float, float] | None) -> torch.Tensor:
    """The output transform, written once: ``sigmoid(raw)`` scaled into ``y_range`` (identity without one)."""
    if y_range is None:
        return raw
    return torch.sigmoid(raw) * (y_range[1] - y_range[0]) + y_range[0]


class Contract:
    """What every cflearn model answers (a mixin of the ``nn.Module`` s below).

    Attributes:
        kind: the config key of the class (``"dot"``, ``"hybrid"``, ``"nn"``, ``"rank"``, ``"dual"``).
        score_kind: what a pair's score (``forward``, :func:`cflearn.predict`) means: ``"rating"``
            (a predicted rating) or ``"ranking"``.
        list_kind: what the scores that order top-N lists (:meth:`list_tables`) mean.
        y_range: the sigmoid range of the output, or ``None``.
    """

    kind: ClassVar[str] = ""
    score_kind: ClassVar[ScoreKind] = "rating"
    list_kind: ClassVar[ScoreKind] = "rating"
    y_range: tuple[float, float] | None = None

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw scores -> the model's output (ratings): :func:`squash` into ``y_range``."""
        return squash(raw, self.y_range)

    def tables(self) -> Tables | None:
        """The user/item tables the model scores with, or ``None`` (score by forward passes)."""
        return None

    def list_tables(self) -> Tables | None:
        """The tables top-N lists are ranked with (``list_kind`` says what their scores mean): the
        model's own tables, except for a model with a ranking head of its own (:class:`Dual`)."""
        return self.tables()

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        """The output transform of :meth:`list_tables`' raw scores."""
        return self.output(raw)

    def score_rows(self, vectors: torch.Tensor, bias: torch.Tensor,
                   items: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None, *,
                   head: Literal["rating", "list"] = "rating") -> torch.Tensor | None:
        """Scores of users given as rows of the user table's space (trained rows, folded-in users, users
        known by metadata): ``output(vector @ item row + bias + item bias)``, the model's one formula.

        Args:
            vectors: ``(n, k)`` user vectors.
            bias: ``(n,)`` user biases.
            items: item indices, ``(n,)`` (one item per user) or ``(n, m)`` (``m`` per user); item rows
                ``(vectors (n, k), bias (n,))``, one per user (items known by metadata); ``None``: every
                item, ``(n, n_items)``.
            head: ``"rating"``: predicted ratings (:meth:`tables`); ``"list"``: the scores that order
                top-N lists (:meth:`list_tables`, :meth:`list_output`).

        Returns:
            The scores, on the tables' device; ``None`` for a model without tables.
        """
        tables = self.list_tables() if head == "list" else self.tables()
        if tables is None:
            return None
        q, b_i = tables.items, tables.item_bias
        u, b_u = vectors.to(q), bias.to(q)
        if items is None:
            raw = u @ q.T + b_u[:, None] + b_i[None, :]
        elif isinstance(items, tuple):
            raw = (u * items[0].to(q)).sum(-1) + b_u + items[1].to(q)
        else:
            idx = items.to(q.device)
            if idx.dim() == 2:
                u, b_u = u[:, None, :], b_u[:, None]
            raw = (u * q[idx]).sum(-1) + b_u + b_i[idx]
        return self.list_output(raw) if head == "list" else self.output(raw)

    def explain(self, user: int, item: int) -> tuple[list[tuple[str, float]], float]:
        """The parts a trained user's score of a trained item adds up from (name, value), and the raw
        score they sum to (before :meth:`output`): an offset, the user's and the item's bias against the
        average ones, and the dot product. ``ValueError`` for a model without tables."""
        tables = self.tables()
        if tables is None:
            raise ValueError("a model without user/item tables has no parts to explain")
        with torch.no_grad():
            U, b_u, Q, b_i = (t.detach().float().cpu() for t in tables)
            pu, qi = U[user], Q[item]
            mu_u, mu_i = float(b_u[1:].mean()), float(b_i[1:].mean())
            parts = [("global offset (average user + item bias)", mu_u + mu_i),
                     ("user bias (vs the average user)", float(b_u[user]) - mu_u),
                     ("item bias (vs the average item)", float(b_i[item]) - mu_i),
                     ("dot product", float(pu @ qi))]
            return parts, float(pu @ qi + b_u[user] + b_i[item])

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None
                    ) -> torch.Tensor | None:
        """The list scores ``(n, n_items)`` of users (by index) or of folded-in users' list vectors, for a
        model that ranks without tables (a closed-form item-item head); ``None``: use :meth:`list_tables`."""
        return None

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        """Trainable tables keyed by (input column, name): column 0 is users, 1 items."""
        return {}

    def trained_rows(self, col: int) -> torch.Tensor | slice:
        """Rows of the column's tables that training reaches (the rest are filled as cold rows)."""
        return slice(1, None)

    def config(self) -> dict[str, Any]:
        """A JSON-able description from which :func:`cflearn.kinds.build_model` rebuilds the same architecture."""
        raise NotImplementedError

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor | None:
        """A new user's vector computed directly from the items they interacted with (and how much
        each counts), or ``None`` when the model has no such encoder (fold-in then fits the vector
        to the ratings)."""
        return None

    def validate(self) -> None:
        """Check what the weights' shapes cannot: the values of index tables (``ValueError`` naming the
        buffer). :func:`cflearn.load` calls it on a loaded file."""


class Embedding(nn.Embedding):
    """fastai's ``Embedding``: an ``nn.Embedding`` initialised from a truncated normal (std 0.01)."""

    def __init__(self, ni: int, nf: int, std: float = 0.01):
        if torch.get_default_device().type == "meta":  # a probe of the sizes a file claims: nothing to draw
            super().__init__(ni, nf, _weight=torch.empty(ni, nf))
            return
        super().__init__(ni, nf)
        with torch.no_grad():
            self.weight.normal_().fmod_(2).mul_(std)  # fastai's trunc_normal_, the same draws


class DotBias(nn.Module, Contract):
    """fastai's ``EmbeddingDotBias``: the same parameters (``u_weight``, ``i_weight``, ``u_bias``,
    ``i_bias``), initialisation, forward, ``from_classes`` and ``bias`` / ``weight`` helpers, in
    plain PyTorch; it also keeps the rows it looked up.

    In training mode the last batch's ``(user factors, item factors, user bias, item bias)`` rows
    are kept in ``last_rows`` so that :class:`cflearn.callbacks.RowL2` can penalise them without
    looking them up a second time.

    Args:
        n_factors: latent factors.
        n_users: rows of the user table (index 0 = unknown).
        n_items: rows of the item table (index 0 = unknown).
        y_range: sigmoid range of the output, or ``None``.
    """

    kind = "dot"
    last_rows: tuple[torch.Tensor, ...] | None = None

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: tuple[float, float] | None = None):
        super().__init__()
        self.y_range = y_range
        self.u_weight, self.i_weight = Embedding(n_users, n_factors), Embedding(n_items, n_factors)
        self.u_bias, self.i_bias = Embedding(n_users, 1), Embedding(n_items, 1)

    @classmethod
    def from_classes(cls, n_factors: int, classes: dict[str, Any], user: str | None = None, item: str | None = None,
                     y_range: tuple[float, float] | None = None) -> DotBias:
        """A model sized from fastai's ``dls.classes`` (as ``EmbeddingDotBias.from_classes``)."""
        user = list(classes)[0] if user is None else user
        item = list(classes)[1] if item is None else item
        model = cls(n_factors, len(classes[user]), len(classes[item]), y_range=y_range)
        vars(model).update(classes=classes, user=user, item=item)  # plain attributes, as fastai sets them
        return model

    def _get_idx(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        classes = getattr(self, "classes", None)
        if classes is None:
            raise AttributeError("build the model with DotBias.from_classes to look rows up by ID")
        c2i = {v: k for k, v in enumerate(classes[self.item if is_item else self.user])}
        return torch.tensor([c2i[o] for o in arr])

    def bias(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        """Biases of the items (or users) in ``arr`` (as fastai's ``EmbeddingDotBias.bias``)."""
        with torch.no_grad():
            return (self.i_bias if is_item else self.u_bias)(self._get_idx(arr, is_item).to(self.i_bias.weight.device)
                                                             ).squeeze().cpu()

    def weight(self, arr: Any, is_item: bool = True) -> torch.Tensor:
        """Factors of the items (or users) in ``arr`` (as fastai's ``EmbeddingDotBias.weight``)."""
        with torch.no_grad():
            table = self.i_weight if is_item else self.u_weight
            return table(self._get_idx(arr, is_item).to(table.weight.device)).cpu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        u, i = self.u_weight(users), self.i_weight(items)
        bu, bi = self.u_bias(users).view(-1), self.i_bias(items).view(-1)
        self.last_rows = (u, i, bu, bi) if self.training else None
        return self.output((u * i).sum(1) + bu + bi)

    def tables(self) -> Tables:
        return Tables(self.u_weight.weight, self.u_bias.weight[:, 0], self.i_weight.weight, self.i_bias.weight[:, 0])

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(0, "u_weight"): self.u_weight, (1, "i_weight"): self.i_weight,
                (0, "u_bias"): self.u_bias, (1, "i_bias"): self.i_bias}

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.u_weight.embedding_dim, "n_users": self.u_weight.num_embeddings,
                "n_items": self.i_weight.num_embeddings, "y_range": _range_list(self.y_range)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DotBias:
        return cls(config["n_factors"], config["n_users"], config["n_items"], y_range=_range(config, required=True))


class TableView:
    """A read-only table of a hybrid model: a side's collaborative part + each row's feature mean.

    It answers what fastbook's code asks of an embedding (``.weight``, a call on indices,
    ``num_embeddings``, ``embedding_dim``), so ``learn.model.i_weight.weight`` and
    ``learn.model.i_bias.weight`` are the vectors and biases the model really scores with.
    """

    def __init__(self, model: HybridDotBias, side: Literal["u", "i"], bias: bool):
        self._model, self._side, self._bias = model, side, bias

    @property
    def weight(self) -> torch.Tensor:
        """The whole table, ``(n_rows, n_factors)`` (or ``(n_rows, 1)`` for biases)."""
        return self(slice(None))

    def __call__(self, rows: torch.Tensor | slice) -> torch.Tensor:
        m, s = self._model, self._side
        f, c = m.features(s, rows)
        own = m.cf_part(s, rows, self._bias)
        return own + (c.unsqueeze(-1) if self._bias else f)

    @property
    def num_embeddings(self) -> int:
        return int(self._model.get_buffer(f"{self._side}_feat_idx").shape[0])

    @property
    def embedding_dim(self) -> int:
        return 1 if self._bias else int(self._model.u_cf_weight.embedding_dim)

    def __repr__(self) -> str:
        return f"TableView({self.num_embeddings}, {self.embedding_dim}, collaborative part + features)"


class HybridDotBias(nn.Module, Contract):
    """Dot product and biases where users and items also get the mean embedding of their side features.

    ``score = sigmoid(<p_u + g_u, q_i + f_i> + b_u + d_u + b_i + c_i)`` scaled to ``y_range``, where
    ``f_i, c_i`` are the means of the item's feature vectors and biases (its genres, year, tags) and
    ``g_u, d_u`` the user's (age, occupation). Rare rows borrow strength from rows with the same
    features, and a row that has features but no training ratings still gets a meaningful score. A
    side without features has none (its feature means are 0). With ``item_cf=False`` items are
    their features alone (content-based: ``q_i = 0, b_i = 0``).

    Parameters per side ``s`` in ``u``, ``i``: ``{s}_cf_weight``, ``{s}_cf_bias`` (the collaborative
    part) and ``{s}_f_weight``, ``{s}_f_bias`` (the features). ``u_weight``, ``u_bias``, ``i_weight``
    and ``i_bias`` are :class:`TableView` s of the *whole* vectors and biases (collaborative part +
    features), so fastbook's bias and neighbour code gives the model's answers. The row->feature
    tables (``{s}_feat_idx``, ``{s}_feat_w``) and the masks of rows seen in training
    (``trained_users``, ``trained_items``) are buffers.

    Args:
        n_factors: latent factors.
        n_users: rows of the user table (index 0 = unknown).
        n_items: rows of the item table (index 0 = unknown).
        items: the items' features as ``(idx, weight, n_features)`` (``idx`` and ``weight``
            ``(n_rows, width)``; padding has weight 0), or ``None`` for none.
        users: the users' features, as ``items``.
        trained_items: ``(n_rows,)`` bool, item rows with training ratings (default: all
            but row 0).
        trained_users: ``(n_rows,)`` bool, user rows with training ratings (default: all
            but row 0).
        y_range: sigmoid range, or ``None`` for a linear output.
        feature_names: the item features' names (saved with the model).
        user_feature_names: the user features' names (saved with the model).
        item_spec: how each item metadata column was read (to encode new rows alike).
        user_spec: how each user metadata column was read.
        item_cf: give items a collaborative part (``False``: content-based).
        user_feature_weight: how much a user known only from metadata (no training rating) moves
            from the average user towards where their features place them: 1 all the way, 0 not at
            all (the features do not help new users); chosen on held-out training users
            (:func:`cflearn.train._feature_trust.choose_user_feature_weight`). Trained users are not affected.
    """

    kind = "hybrid"

    def __init__(self, n_factors: int, n_users: int, n_items: int, *,
                 items: tuple[torch.Tensor, torch.Tensor, int] | None = None,
                 users: tuple[torch.Tensor, torch.Tensor, int] | None = None,
                 trained_items: torch.Tensor | None = None, trained_users: torch.Tensor | None = None,
                 y_range: tuple[float, float] | None = None, feature_names: list[str] | None = None,
                 user_feature_names: list[str] | None = None, item_spec: list[dict[str, Any]] | None = None,
                 user_spec: list[dict[str, Any]] | None = None, item_cf: bool = True,
                 user_feature_weight: float = 1.0):
        super().__init__()
        self.y_range, self.item_cf = y_range, bool(item_cf)
        self.user_feature_weight = float(user_feature_weight)
        self.new_user_chart: float | None = None  # the chart's weight in a metadata-only user's list (measured)
        self.u_cf_weight, self.u_cf_bias = Embedding(n_users, n_factors), Embedding(n_users, 1)
        n_cf_items = n_items if item_cf else 1  # content-based: no collaborative item part to learn
        self.i_cf_weight, self.i_cf_bias = Embedding(n_cf_items, n_factors), Embedding(n_cf_items, 1)
        if not item_cf:
            for table in (self.i_cf_weight, self.i_cf_bias):
                table.weight.data.zero_()
                table.weight.requires_grad_(False)
        for s, n_rows, given, trained in (("u", n_users, users, trained_users), ("i", n_items, items, trained_items)):
            idx, w, n_feat = given if given is not None else (torch.zeros(n_rows, 1), torch.zeros(n_rows, 1), 0)
            setattr(self, f"{s}_f_weight", Embedding(max(1, n_feat), n_factors))
            setattr(self, f"{s}_f_bias", Embedding(max(1, n_feat), 1))
            self.register_buffer(f"{s}_feat_idx", idx.long())
            self.register_buffer(f"{s}_feat_w", w.float())
            if trained is None:
                trained = torch.ones(n_rows, dtype=torch.bool)
                trained[0] = False
            self.register_buffer("trained_users" if s == "u" else "trained_items", trained.bool())
        self.feature_names, self.user_feature_names = list(feature_names or []), list(user_feature_names or [])
        self.item_spec, self.user_spec = list(item_spec or []), list(user_spec or [])
        self.last_rows: tuple[torch.Tensor, ...] | None = None

    @property
    def u_weight(self) -> TableView:
        """User vectors the model scores with (collaborative part + feature mean)."""
        return TableView(self, "u", bias=False)

    @property
    def u_bias(self) -> TableView:
        """User biases the model scores with (collaborative part + feature mean)."""
        return TableView(self, "u", bias=True)

    @property
    def i_weight(self) -> TableView:
        """Item vectors the model scores with (collaborative part + feature mean)."""
        return TableView(self, "i", bias=False)

    @property
    def i_bias(self) -> TableView:
        """Item biases the model scores with (collaborative part + feature mean)."""
        return TableView(self, "i", bias=True)

    def features(self, side: Literal["u", "i"] = "i",
                 rows: torch.Tensor | slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean feature vectors ``(len(rows), n_factors)`` and biases ``(len(rows),)`` of one side's rows
        (users known only from metadata: shrunk towards the average by :attr:`user_feature_weight`)."""
        feat_idx, feat_w = self.get_buffer(f"{side}_feat_idx"), self.get_buffer(f"{side}_feat_w")
        f, c = self.feature_mean(side, feat_idx[rows], feat_w[rows])
        if side == "u" and self.user_feature_weight != 1.0 and not self.training:
            # rows known only from metadata (a featureless cold row already holds the mean feature part)
            cold = ~self.get_buffer("trained_users")[rows] & (feat_w[rows].sum(1) > 0)
            if bool(cold.any()):
                f, c = f.clone(), c.clone()
                f[cold], c[cold] = self.shrink_features(f[cold], c[cold])
        return f, c

    def shrink_features(self, vec: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New users' feature parts moved towards the trained users' mean by :attr:`user_feature_weight`."""
        a = self.user_feature_weight
        if a == 1.0:
            return vec, bias
        trained = self.get_buffer("trained_users")
        mf, mc = self.feature_mean("u", self.get_buffer("u_feat_idx")[trained], self.get_buffer("u_feat_w")[trained])
        return mf.mean(0) + a * (vec - mf.mean(0)), mc.mean() + a * (bias - mc.mean())

    def feature_mean(self, side: Literal["u", "i"], idx: torch.Tensor,
                     weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean feature vector and bias of rows given as ``(idx, weight)`` (e.g. a new user's)."""
        fw = weight.to(self.u_cf_weight.weight).unsqueeze(-1)
        fi = idx.to(self.get_buffer("u_feat_idx"))
        vec, bias = getattr(self, f"{side}_f_weight"), getattr(self, f"{side}_f_bias")
        return (vec(fi) * fw).sum(1), (bias(fi) * fw).sum((1, 2))

    def explain(self, user: int, item: int) -> tuple[list[tuple[str, float]], float]:
        """:meth:`Contract.explain` with the item's side split: its own bias and collaborative dot product,
        then each of its features' share (weight x (feature bias + the user's vector @ the feature's))."""
        parts, raw = Contract.explain(self, user, item)
        with torch.no_grad():
            row = torch.tensor([item], device=self.get_buffer("i_feat_idx").device)
            tables = self.tables()
            pu = tables.users[user].detach().float().cpu()
            own_b = float(self.cf_part("i", row, True).reshape(-1)[0])
            own_q = self.cf_part("i", row, False)[0].detach().float().cpu()
            fi, fw = self.get_buffer("i_feat_idx")[item].cpu(), self.get_buffer("i_feat_w")[item].cpu()
            fvec = self.get_parameter("i_f_weight.weight").detach().float().cpu()
            fbias = self.get_parameter("i_f_bias.weight").detach().float().cpu()
            item_mean = float(tables.item_bias[1:].mean())
        out = parts[:2] + [("item bias (vs the average item)", own_b - item_mean),
                           ("dot product (collaborative part)", float(pu @ own_q))]
        names = self.feature_names
        for k, w in zip(fi.tolist(), fw.tolist()):
            if w > 0:
                name = names[k] if k < len(names) else f"feature {k}"
                out.append((f"feature {name}", w * (float(fbias[k, 0]) + float(pu @ fvec[k]))))
        return out, raw

    def cf_part(self, side: Literal["u", "i"], rows: torch.Tensor | slice, bias: bool) -> torch.Tensor:
        """The collaborative part of one side's rows (0 for content-based items)."""
        table = getattr(self, f"{side}_cf_{'bias' if bias else 'weight'}")
        if side == "i" and not self.item_cf:
            n = self.get_buffer("i_feat_idx")[rows].shape[0]
            return table.weight[:1].expand(n, -1)
        return table(rows) if isinstance(rows, torch.Tensor) else table.weight[rows]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        u, i = self.cf_part("u", users, False), self.cf_part("i", items, False)
        bu, bi = self.cf_part("u", users, True).view(-1), self.cf_part("i", items, True).view(-1)
        g, d = self.features("u", users)
        f, c = self.features("i", items)
        self.last_rows = (u, i, bu, bi) if self.training else None
        return self.output(((u + g) * (i + f)).sum(1) + bu + d + bi + c)

    def tables(self) -> Tables:
        g, d = self.features("u")
        f, c = self.features("i")
        return Tables(self.cf_part("u", slice(None), False) + g, self.cf_part("u", slice(None), True)[:, 0] + d,
                      self.cf_part("i", slice(None), False) + f, self.cf_part("i", slice(None), True)[:, 0] + c)

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        own: dict[TableKey, nn.Embedding] = {(0, "u_cf_weight"): self.u_cf_weight, (0, "u_cf_bias"): self.u_cf_bias}
        if self.item_cf:
            own.update({(1, "i_cf_weight"): self.i_cf_weight, (1, "i_cf_bias"): self.i_cf_bias})
        return own

    def trained_rows(self, col: int) -> torch.Tensor | slice:
        return self.get_buffer("trained_items" if col == 1 else "trained_users")

    def featureless_shift(self, col: int, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Rows without features (row 0, the unknown ID) and the trained rows' mean feature part:
        a cold featureless row gets it on top of the collaborative mean, so it is the average row."""
        side: Literal["u", "i"] = "u" if col == 0 else "i"
        rows = self.get_buffer(f"{side}_feat_w").sum(1) == 0
        f, c = self.mean_features(side)
        return rows, (c.reshape(1) if "bias" in name else f)

    def mean_features(self, side: Literal["u", "i"]) -> tuple[torch.Tensor, torch.Tensor]:
        """The trained rows' mean feature vector ``(n_factors,)`` and bias (a scalar tensor): the
        feature part of the average row."""
        f, c = self.features(side, self.trained_rows(0 if side == "u" else 1))
        return f.mean(0), c.mean()

    def validate(self) -> None:
        for side in ("u", "i"):
            idx, w = self.get_buffer(f"{side}_feat_idx"), self.get_buffer(f"{side}_feat_w")
            n_feat = self.get_parameter(f"{side}_f_weight.weight").shape[0]
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_feat):
                raise ValueError(f"{side}_feat_idx points outside the {n_feat} feature rows")
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
                raise ValueError(f"{side}_feat_w holds negative or non-finite weights")
        names = (self.user_feature_names, self.feature_names)
        n_u, n_i = (self.get_parameter(f"{s}_f_weight.weight").shape[0] for s in ("u", "i"))
        for side, spec, names_, n_feat in (("user", self.user_spec, names[0], n_u),
                                           ("item", self.item_spec, names[1], n_i)):
            _check_spec(spec, side)
            if not isinstance(names_, list) or not all(isinstance(n, str) for n in names_) or (
                    names_ and len(names_) != n_feat):
                raise ValueError(f"the {side} feature names do not match the {n_feat} feature rows")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.u_cf_weight.embedding_dim,
                "n_users": self.get_buffer("u_feat_idx").shape[0], "n_items": self.get_buffer("i_feat_idx").shape[0],
                "y_range": _range_list(self.y_range), "item_cf": self.item_cf,
                "n_features": self.get_parameter("i_f_weight.weight").shape[0],
                "max_features": self.get_buffer("i_feat_idx").shape[1],
                "feature_names": list(self.feature_names), "item_spec": list(self.item_spec),
                "n_user_features": self.get_parameter("u_f_weight.weight").shape[0],
                "max_user_features": self.get_buffer("u_feat_idx").shape[1],
                "user_feature_names": list(self.user_feature_names), "user_spec": list(self.user_spec),
                "user_feature_weight": self.user_feature_weight, "new_user_chart": self.new_user_chart}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HybridDotBias:
        n_users, n_items = config["n_users"], config["n_items"]

        def side(n_rows: int, width: int, n_feat: int) -> tuple[torch.Tensor, torch.Tensor, int]:
            return torch.zeros(n_rows, width), torch.zeros(n_rows, width), n_feat

        model = cls(config["n_factors"], n_users, n_items,
                    items=side(n_items, config["max_features"], config["n_features"]),
                    users=side(n_users, config.get("max_user_features", 1), config.get("n_user_features", 1)),
                    trained_items=torch.zeros(n_items), trained_users=torch.zeros(n_users),
                    y_range=_range(config, required=True),
                    feature_names=list(config.get("feature_names", [])),
                    user_feature_names=list(config.get("user_feature_names", [])),
                    item_spec=list(config.get("item_spec", [])), user_spec=list(config.get("user_spec", [])),
                    item_cf=bool(config.get("item_cf", True)),
                    user_feature_weight=_weight(config.get("user_feature_weight", 1.0)))
        chart = config.get("new_user_chart")
        model.new_user_chart = None if chart is None else _weight(chart, "new_user_chart")
        return model


def csr_rows(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the entries of some CSR ``rows`` are: ``(positions in the data, offset of each row's first
    entry in that concatenation, row lengths)``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    offsets = torch.cumsum(lens, 0) - lens
    pos = torch.repeat_interleave(starts - offsets, lens) + torch.arange(int(lens.sum()), device=lens.device)
    return pos, offsets, lens


class Ranker(nn.Module, Contract):
    """A ranking model: a user is the bag of items they interacted with (an item-based encoder).

    ``score(u, i) = <h_u, q_i> + b_i`` with ``h_u = tanh(weighted mean of e_j over the user's
    training items j)``: the user's vector is computed from their history, so a new user is encoded from a
    few items without training (:meth:`fold_vector`), as in a linear autoencoder (Mult-DAE,
    Liang et al. 2018; EASE, Steck 2019) with a low-rank bottleneck. Trained with a softmax over
    the whole catalogue per user (cflearn's ``rank`` preset), the scores rank items; they are
    not ratings (``score_kind = "ranking"``).

    A forward pass on an ``(n, 2)`` batch returns pair scores (the contract); on a 1-D batch of
    user indices it returns the users' vectors ``h_u`` (what the ranking losses score against
    :attr:`i_weight` and :attr:`i_bias`). In training mode each history item is dropped with
    probability ``dropout`` (a denoising autoencoder).

    Parameters: ``i_in`` (what having an item says about a user), ``i_weight`` and ``i_bias``
    (the item side of the score). Buffers: the users' histories as CSR (``hist_indptr``,
    ``hist_items``, ``hist_weight``: how much each item counts), saved with the model.

    Args:
        n_factors: size of the vectors.
        n_users: user rows (index 0 = unknown).
        n_items: item rows (index 0 = unknown).
        hist_indptr: CSR offsets of each user's training items (``n_users + 1``).
        hist_items: CSR item indices of each user's training items.
        hist_weight: weight of each history item (default 1).
        dropout: input dropout in training.
        seed: seed of the dropout masks (``None``: drawn from torch's global generator once).
    """

    kind = "rank"
    score_kind = "ranking"
    list_kind = "ranking"

    def __init__(self, n_factors: int, n_users: int, n_items: int, hist_indptr: torch.Tensor,
                 hist_items: torch.Tensor, hist_weight: torch.Tensor | None = None, dropout: float = 0.5,
                 seed: int | None = None):
        super().__init__()
        if len(hist_indptr) != n_users + 1:
            raise ValueError(f"hist_indptr has {len(hist_indptr)} offsets for {n_users} users")
        self.dropout = float(dropout)
        self.n_users = int(n_users)
        self.seed = int(torch.randint(0, 2**62, (1,), device="cpu")) if seed is None else int(seed)
        self._gen: torch.Generator | None = None
        self.i_in, self.i_weight = Embedding(n_items, n_factors), Embedding(n_items, n_factors)
        self.i_bias = Embedding(n_items, 1)
        with torch.no_grad():
            self.i_bias.weight.zero_()
        self.register_buffer("hist_indptr", hist_indptr.long())
        self.register_buffer("hist_items", hist_items.long())
        self.register_buffer("hist_weight", torch.ones(len(hist_items)) if hist_weight is None else hist_weight.float())
        self.sparse = False  # sparse row gradients (set for LazyAdamW by the learner)
        self._users: tuple[tuple[int, ...], torch.Tensor] | None = None  # (weights' versions, user vectors)

    def encode(self, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """User vectors from weighted bags of item indices (``offsets``: where each bag starts)."""
        n = len(offsets)
        lens = torch.diff(offsets, append=offsets.new_tensor([len(items)]))
        total = torch.zeros(n, device=items.device).index_add(
            0, torch.repeat_interleave(torch.arange(n, device=items.device), lens), weights)
        w = weights
        if self.training and self.dropout > 0:
            if self._gen is None or self._gen.device != items.device:
                self._gen = torch.Generator(device=items.device)
                self._gen.manual_seed(self.seed)
            keep = torch.rand(len(items), device=items.device, generator=self._gen) >= self.dropout
            w = weights * keep.float() / (1 - self.dropout)
        h = F.embedding_bag(items, self.i_in.weight, offsets, mode="sum", per_sample_weights=w, sparse=self.sparse)
        return torch.tanh(h / total.clamp(min=1e-6).to(h).unsqueeze(1)) if n else h

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_factors)`` vectors of users (by index) from their training histories."""
        pos, offsets, _ = csr_rows(self.get_buffer("hist_indptr"), users)
        return self.encode(self.get_buffer("hist_items")[pos], offsets, self.get_buffer("hist_weight")[pos])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return self.user_vectors(x)
        users, inverse = torch.unique(x[:, 0], return_inverse=True)  # each user's history encoded once
        h = self.user_vectors(users)[inverse]
        items = x[:, 1]
        return (h * self.i_weight(items)).sum(1) + self.i_bias(items).view(-1)

    def item_rows(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors and biases of some items (sparse gradients when :attr:`sparse`)."""
        return (F.embedding(items, self.i_weight.weight, sparse=self.sparse),
                F.embedding(items, self.i_bias.weight, sparse=self.sparse)[:, 0])

    def tables(self) -> Tables:
        """Every user's vector is encoded once per state of the weights (scoring users in chunks, as
        ``recommend_all`` and ``evaluate`` do, reuses it until training or loading changes them)."""
        tensors = (self.i_in.weight, self.get_buffer("hist_items"), self.get_buffer("hist_weight"),
                   self.get_buffer("hist_indptr"))
        key = (int(self.training), *(t._version for t in tensors), *(t.data_ptr() for t in tensors))
        if self._users is None or self._users[0] != key or torch.is_grad_enabled():
            users = self.user_vectors(torch.arange(self.n_users, device=self.i_in.weight.device))
            self._users = None if torch.is_grad_enabled() else (key, users)
        else:
            users = self._users[1]
        return Tables(users, users.new_zeros(len(users)), self.i_weight.weight, self.i_bias.weight[:, 0])

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(1, "i_in"): self.i_in, (1, "i_weight"): self.i_weight, (1, "i_bias"): self.i_bias}

    def validate(self) -> None:
        indptr, items, w = (self.get_buffer(n) for n in ("hist_indptr", "hist_items", "hist_weight"))
        if int(indptr[0]) != 0 or not bool((indptr[1:] >= indptr[:-1]).all()) or int(indptr[-1]) != len(items):
            raise ValueError("hist_indptr is not a list of offsets into the users' histories")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.i_in.num_embeddings):
            raise ValueError("hist_items points outside the item table")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError("hist_weight holds negative or non-finite weights")

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.i_in.weight.device
        w = torch.ones(len(items), device=dev) if weights is None else weights.float().to(dev)
        return self.encode(items.long().to(dev), torch.zeros(1, dtype=torch.long, device=dev), w)[0]

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.i_in.embedding_dim, "n_users": self.n_users,
                "n_items": self.i_in.num_embeddings, "n_history": int(self.get_buffer("hist_items").numel()),
                "dropout": self.dropout}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Ranker:
        n_users = config["n_users"]
        n_hist = config["n_history"]
        return cls(config["n_factors"], n_users, config["n_items"], torch.zeros(n_users + 1, dtype=torch.long),
                   torch.zeros(n_hist, dtype=torch.long), torch.ones(n_hist), float(config.get("dropout", 0.5)))


class ItemItem(nn.Module, Contract):
    """A closed-form ranking head: EASE (Steck 2019), a user's scores are their item row times an item x item matrix.

    ``score(u, i) = sum over the user's training items j of B[j, i]`` over the items with at least
    ``min_count`` training interactions (``keep``), ``B = I - P / diag(P)``, ``P = (X'X + lambda I)^-1``
    on the binary user x item matrix ``X``. Items outside ``keep`` score below every kept item, by
    popularity (covered items get a ``1e-6`` tie-break by popularity). It has no trainable parameter:
    :meth:`fit_weights` solves it (what :class:`cflearn.kinds._dual.ItemItemFit` does before training the
    rating head beside it), and a new user is encoded from their items without fitting
    (:meth:`fold_vector`). ``score_kind = "ranking"``.

    Buffers: the users' training items as CSR (``hist_indptr``, ``hist_items``; every interaction counts
    once, as in EASE), ``keep`` (the covered items), ``weights`` (``B`` over them, zero diagonal) and
    ``floor`` (the scores of the items outside ``keep``), saved with the model.

    Args:
        n_users: user rows (index 0 = unknown).
        n_items: item rows (index 0 = unknown).
        n_kept: covered items (the side of ``B``).
        hist_indptr: CSR offsets of each user's training items (``n_users + 1``).
        hist_items: CSR item indices of each user's training items.
        lam: EASE's regularisation (set by :meth:`fit_weights`; recorded in the config).
    """

    kind = "item_item"
    score_kind = "ranking"
    list_kind = "ranking"

    def __init__(self, n_users: int, n_items: int, n_kept: int, hist_indptr: torch.Tensor, hist_items: torch.Tensor,
                 lam: float = 0.0):
        super().__init__()
        if len(hist_indptr) != n_users + 1:
            raise ValueError(f"hist_indptr has {len(hist_indptr)} offsets for {n_users} users")
        self.n_users, self.n_items, self.lam = int(n_users), int(n_items), float(lam)
        self.register_buffer("hist_indptr", hist_indptr.long())
        self.register_buffer("hist_items", hist_items.long())
        self.register_buffer("keep", torch.zeros(n_kept, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(n_kept, n_kept))
        self.register_buffer("floor", torch.zeros(n_items))
        self.sparse = False  # no parameters; set like the learned head's by the learner

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit_weights` has run (or fitted weights were loaded)."""
        return self.lam > 0

    def fit_weights(self, keep: torch.Tensor, weights: torch.Tensor, floor: torch.Tensor, lam: float) -> None:
        """Set the solved model: the covered items, ``B`` over them, the other items' scores and ``lambda``."""
        device = self.get_buffer("hist_items").device
        self.keep, self.weights = keep.long().to(device), weights.float().to(device)
        self.floor = floor.float().to(device)
        self.lam = float(lam)

    def _column(self) -> torch.Tensor:
        column = torch.full((self.n_items,), -1, dtype=torch.long, device=self.keep.device)
        column[self.get_buffer("keep")] = torch.arange(len(self.keep), device=self.keep.device)
        return column

    def item_rows(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_kept)`` binary rows of the users' training items over the covered items."""
        pos, offsets, lens = csr_rows(self.get_buffer("hist_indptr"), users)
        col = self._column()[self.get_buffer("hist_items")[pos]]
        row = torch.repeat_interleave(torch.arange(len(users), device=col.device), lens)
        out = torch.zeros(len(users), len(self.keep), device=col.device)
        ok = col >= 0
        out[row[ok], col[ok]] = 1.0
        return out

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, n_items)`` scores of users (by index) or of item rows over the covered items (``vectors``,
        as :meth:`fold_vector` makes them)."""
        if vectors is None:
            if users is None:
                raise ValueError("list_scores needs users or vectors")
            x = self.item_rows(users.to(self.get_buffer("keep").device))
        else:
            x = vectors.to(self.get_buffer("weights"))
        out = self.get_buffer("floor").expand(len(x), -1).clone()
        out[:, self.get_buffer("keep")] += x @ self.get_buffer("weights")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 1:
            return self.item_rows(x)
        users, inverse = torch.unique(x[:, 0], return_inverse=True)
        out = torch.empty(len(x), device=x.device)
        for s in range(0, len(users), 1024):  # a block of users' score rows at a time
            sel = (inverse >= s) & (inverse < s + 1024)
            rows = self.list_scores(users[s:s + 1024])
            out[sel] = rows[inverse[sel] - s, x[sel, 1]]
        return out

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """A new user's row over the covered items: each item they interacted with counts once, except those
        whose weight is 0 (:func:`cflearn.fold_in` gives ratings below the relevance level the preset's
        ``below_weight``: a disliked film is not a taste to extend). An empty row gets the popular items."""
        items = items.long().to(self.keep.device)
        if weights is not None:
            items = items[weights.to(items.device) > 0]
        col = self._column()[items]
        out = torch.zeros(len(self.keep), device=self.keep.device)
        out[col[col >= 0]] = 1.0
        return out

    def validate(self) -> None:
        indptr, items, keep = (self.get_buffer(n) for n in ("hist_indptr", "hist_items", "keep"))
        if int(indptr[0]) != 0 or not bool((indptr[1:] >= indptr[:-1]).all()) or int(indptr[-1]) != len(items):
            raise ValueError("hist_indptr is not a list of offsets into the users' histories")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= self.n_items):
            raise ValueError("hist_items points outside the item table")
        if keep.numel() and (int(keep.min()) < 1 or int(keep.max()) >= self.n_items
                             or not bool((keep[1:] > keep[:-1]).all())):
            raise ValueError("keep is not a sorted list of distinct known items")
        if not bool(torch.isfinite(self.get_buffer("weights")).all()) or not bool(
                torch.isfinite(self.get_buffer("floor")).all()):
            raise ValueError("the item-item weights hold non-finite values")
        if keep.numel() and float(self.get_buffer("weights").diagonal().abs().max()) != 0.0:
            raise ValueError("the item-item weights score an item by itself (non-zero diagonal)")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_users": self.n_users, "n_items": self.n_items, "n_kept": len(self.keep),
                "n_history": int(self.get_buffer("hist_items").numel()), "lambda": self.lam}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ItemItem:
        n_users, n_hist = int(config["n_users"]), int(config["n_history"])
        lam = float(config.get("lambda", 0.0))
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda must be a non-negative number, got {lam}")
        return cls(n_users, int(config["n_items"]), int(config["n_kept"]), torch.zeros(n_users + 1, dtype=torch.long),
                   torch.zeros(n_hist, dtype=torch.long), lam)


class Dual(nn.Module, Contract):
    """Two heads in one model: ratings from a rating head, top-N lists from a ranking head.

    ``rating`` is a dot-product model (:class:`DotBias`, or :class:`HybridDotBias` with side
    features) trained with MSE on the observed ratings; ``ranking`` is a :class:`Ranker` trained
    with a softmax over the catalogue on who liked what. They train together, in one loop
    (each step: a batch of users for the ranking head and a slice of the ratings for the rating
    head, one weighted loss), and are saved and loaded as one model. :func:`cflearn.predict` answers
    from the rating head (``score_kind = "rating"``); :func:`cflearn.recommend`,
    :func:`cflearn.recommend_all` and the ranking metrics of :func:`cflearn.evaluate` from the
    ranking head (``list_kind = "ranking"``).

    The heads keep their own tables: sharing the item table between them, or the user vector, was
    measured and lost or tied on ml-latest-small (``bench/one_model.py``; the rating head's row L2
    shrinks the vectors the softmax needs), so each head keeps the form it is best at.

    A forward pass on an ``(n, 2)`` batch returns the rating head's scores (the contract); on a
    training batch ``(users, pairs)`` it returns ``(user vectors of the ranking head, ratings of
    the pairs)`` for :class:`cflearn.kinds._ranking.DualLoss`.
    """

    kind = "dual"
    score_kind = "rating"
    list_kind = "ranking"

    def __init__(self, rating: DotBias | HybridDotBias, ranking: Ranker | ItemItem):
        super().__init__()
        self.rating, self.ranking = rating, ranking
        self.y_range = rating.y_range

    def forward(self, x: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> Any:
        if isinstance(x, (tuple, list)):
            users, pairs = x
            return self.ranking(users), self.rating(pairs)
        if x.dim() == 1:
            return self.ranking(x)
        return self.rating(x)

    @property
    def last_rows(self) -> tuple[torch.Tensor, ...] | None:
        """The rating head's last looked-up rows (for :class:`cflearn.callbacks.RowL2`)."""
        return self.rating.last_rows

    # fastbook chapter 8's interpretation code reads these: the rating head's tables
    @property
    def u_weight(self) -> Any:
        """The rating head's user vectors (as fastai's ``EmbeddingDotBias.u_weight``)."""
        return self.rating.u_weight

    @property
    def i_weight(self) -> Any:
        """The rating head's item vectors."""
        return self.rating.i_weight

    @property
    def u_bias(self) -> Any:
        """The rating head's user biases."""
        return self.rating.u_bias

    @property
    def i_bias(self) -> Any:
        """The rating head's item biases."""
        return self.rating.i_bias

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        return self.rating.output(raw)

    def tables(self) -> Tables:
        return self.rating.tables()

    def list_tables(self) -> Tables | None:
        return None if isinstance(self.ranking, ItemItem) else self.ranking.tables()

    def list_scores(self, users: torch.Tensor | None = None, vectors: torch.Tensor | None = None
                    ) -> torch.Tensor | None:
        return self.ranking.list_scores(users, vectors) if isinstance(self.ranking, ItemItem) else None

    def list_output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {**{(c, f"rating.{n}"): t for (c, n), t in self.rating.embeddings().items()},
                **{(c, f"ranking.{n}"): t for (c, n), t in self.ranking.embeddings().items()}}

    def trained_rows(self, col: int) -> torch.Tensor | slice:
        return self.rating.trained_rows(col)

    def featureless_shift(self, col: int, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A hybrid rating head's shift of featureless cold rows (see :meth:`HybridDotBias.featureless_shift`);
        the ranking head's rows have no features."""
        if isinstance(self.rating, HybridDotBias) and name.startswith("rating."):
            return self.rating.featureless_shift(col, name.removeprefix("rating."))
        return None

    def fold_vector(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The ranking head's vector of a new user (encoded from their items)."""
        return self.ranking.fold_vector(items, weights)

    def validate(self) -> None:
        self.rating.validate()
        self.ranking.validate()

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "rating": self.rating.config(), "ranking": self.ranking.config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Dual:
        rating, ranking = (config.get(key) for key in ("rating", "ranking"))
        if not isinstance(rating, dict) or not isinstance(ranking, dict):
            raise ValueError("a dual model's config holds its two heads' configs")
        heads: dict[Any, Any] = {"dot": DotBias, "hybrid": HybridDotBias, "rank": Ranker, "item_item": ItemItem}
        rating_cls, ranking_cls = heads.get(rating.get("kind")), heads.get(ranking.get("kind"))  # Dual's own heads
        if rating_cls not in (DotBias, HybridDotBias) or ranking_cls not in (Ranker, ItemItem):
            raise ValueError("a dual model holds a dot-product rating head and a ranking head")
        return cls(rating_cls.from_config(rating), ranking_cls.from_config(ranking))


def rating_head(model: nn.Module) -> nn.Module:
    """The part of a model that predicts ratings (a :class:`Dual`'s rating head, else the model)."""
    model = unwrap(model)
    return model.rating if isinstance(model, Dual) else model


def ranking_head(model: nn.Module) -> Ranker | None:
    """The learned :class:`Ranker` of a model (itself, or a :class:`Dual`'s ranking head), or ``None``
    (an :class:`ItemItem` head has nothing to train: see :func:`item_item_head`)."""
    model = unwrap(model)
    if isinstance(model, Dual):
        return model.ranking if isinstance(model.ranking, Ranker) else None
    return model if isinstance(model, Ranker) else None


def item_item_head(model: nn.Module) -> ItemItem | None:
    """The closed-form :class:`ItemItem` ranking head of a model (itself, or a :class:`Dual`'s), or ``None``."""
    model = unwrap(model)
    if isinstance(model, Dual):
        model = model.ranking
    return model if isinstance(model, ItemItem) else None


class Foreign(Contract):
    """The contract of a user's own ``nn.Module``: forward passes only, weights saved with its class name.

    A module may implement any of :class:`Contract`'s methods itself (e.g. ``tables()`` to get
    matrix-product scoring and fold-in, ``embeddings()`` for row L2 and cold rows); those are used.
    """

    kind = "custom"

    def __init__(self, module: nn.Module):
        self.module = module
        self.y_range = getattr(module, "y_range", None)

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        fn = getattr(self.module, "output", None)
        return fn(raw) if callable(fn) else raw

    def tables(self) -> Tables | None:
        fn = getattr(self.module, "tables", None)
        return Tables(*fn()) if callable(fn) else None

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        fn = getattr(self.module, "embeddings", None)
        return dict(fn()) if callable(fn) else {}

    def config(self) -> dict[str, Any]:
        cls = type(self.module)
        return {"kind": self.kind, "class": f"{cls.__module__}.{cls.__qualname__}"}


def contract(model: nn.Module) -> Contract:
    """The model's contract: the model itself for cflearn's kinds, a :class:`Foreign` wrapper otherwise
    (the module inside a ``DistributedDataParallel`` wrapper is the model)."""
    model = unwrap(model)
    return model if isinstance(model, Contract) else Foreign(model)


if TYPE_CHECKING:  # what type checkers and the API reference see: fastai's NN, imported on first use
    from ._nn import NN  # noqa: F401

def __getattr__(name: str) -> Any:  # models.NN: fastai's EmbeddingNN, imported when first asked for
    if name == "NN":
        return importlib.import_module("cflearn.models._nn").NN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _range(config: dict[str, Any], *, required: bool = False) -> tuple[float, float] | None:
    """The ``y_range`` of a config (``None`` for none): two finite numbers, low < high (a tampered one is
    a ``ValueError``; so is a missing one where the model predicts ratings, ``required``)."""
    yr = config.get("y_range")
    if yr is None:
        if required:
            raise ValueError("a rating model's y_range is missing")
        return None
    if not isinstance(yr, (list, tuple)) or len(yr) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in yr):
        raise ValueError(f"y_range must be two numbers, got {yr!r}")
    lo, hi = float(yr[0]), float(yr[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"y_range must be two finite numbers, low < high, got {yr!r}")
    return lo, hi


_SPEC_KINDS = ("labels", "codes", "buckets")


def _check_spec(spec: Any, side: str) -> None:
    """A side's feature specs as saved: a list of ``{"column": name, "kind": ...}`` (buckets with finite,
    rising edges); a tampered one is a ``ValueError``."""
    if not isinstance(spec, list):
        raise ValueError(f"the {side} feature specs must be a list, got {type(spec).__name__}")
    for one in spec:
        if not isinstance(one, dict) or not isinstance(one.get("column"), str) or one.get("kind") not in _SPEC_KINDS:
            raise ValueError(f"a {side} feature spec must name its column and kind ({', '.join(_SPEC_KINDS)}), got "
                             f"{str(one)[:80]}")
        if one["kind"] == "buckets":
            edges = one.get("edges")
            if not isinstance(edges, list) or not all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                      and math.isfinite(e) for e in edges) or edges != sorted(edges):
                raise ValueError(f"the bucket edges of {side} feature {one['column']!r} must be rising numbers")


def _weight(value: Any, name: str = "user_feature_weight") -> float:
    """A weight in [0, 1] from a config (a tampered one is a ``ValueError``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _range_list(y_range: tuple[float, float] | None) -> list[float] | None:
    return [float(v) for v in y_range] if y_range is not None else None
