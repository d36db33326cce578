"""The dot product with user and item side features (:class:`HybridDotBias`), and a view of its
collaborative and feature rows (:class:`TableView`)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from ._checks import check_spec, check_weight, range_list, y_range_of
from ._contract import Contract, Embedding, TableKey, Tables

__all__ = ["TableView", "HybridDotBias"]


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
            check_spec(spec, side)
            if not isinstance(names_, list) or not all(isinstance(n, str) for n in names_) or (
                    names_ and len(names_) != n_feat):
                raise ValueError(f"the {side} feature names do not match the {n_feat} feature rows")

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_factors": self.u_cf_weight.embedding_dim,
                "n_users": self.get_buffer("u_feat_idx").shape[0], "n_items": self.get_buffer("i_feat_idx").shape[0],
                "y_range": range_list(self.y_range), "item_cf": self.item_cf,
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
                    y_range=y_range_of(config, required=True),
                    feature_names=list(config.get("feature_names", [])),
                    user_feature_names=list(config.get("user_feature_names", [])),
                    item_spec=list(config.get("item_spec", [])), user_spec=list(config.get("user_spec", [])),
                    item_cf=bool(config.get("item_cf", True)),
                    user_feature_weight=check_weight(config.get("user_feature_weight", 1.0)))
        chart = config.get("new_user_chart")
        model.new_user_chart = None if chart is None else check_weight(chart, "new_user_chart")
        return model
