"""The networks (forward only): fastai's ``EmbeddingDotBias`` and ``EmbeddingNN``, plus helpers.

cflearn trains fastai's own modules so that a cflearn model is a fastai model: same parameters,
same forward, same ``state_dict`` keys. These helpers build them from a JSON-able config (for
loading without pickle) and find their user/item tables.
"""

from __future__ import annotations

from typing import Any

import torch
from fastai.collab import EmbeddingDotBias, EmbeddingNN
from fastai.layers import LinBnDrop
from fastai.tabular.model import tabular_config
from torch import nn

__all__ = [
    "EmbeddingDotBias",
    "EmbeddingNN",
    "DotBias",
    "HybridDotBias",
    "build_model",
    "model_config",
    "embedding_tables",
    "trained_rows",
    "factor_tables",
]


class DotBias(EmbeddingDotBias):
    """fastai's ``EmbeddingDotBias`` (same parameters, same forward) that keeps the rows it looked up.

    In training mode the last batch's ``(user factors, item factors, user bias, item bias)`` rows
    are kept in ``last_rows`` so that :class:`cflearn.callbacks.RowL2` can penalise them without
    looking them up a second time.
    """

    last_rows: tuple[torch.Tensor, ...] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        u, i = self.u_weight(users), self.i_weight(items)
        bu, bi = self.u_bias(users).view(-1), self.i_bias(items).view(-1)
        self.last_rows = (u, i, bu, bi) if self.training else None
        res = (u * i).sum(1) + bu + bi
        if self.y_range is None:
            return res
        return torch.sigmoid(res) * (self.y_range[1] - self.y_range[0]) + self.y_range[0]


class HybridDotBias(nn.Module):
    """Dot product and biases where each item also gets the mean embedding of its side features.

    ``score = sigmoid(<p_u, q_i + f_i> + b_u + b_i + c_i)`` scaled to ``y_range``, where ``f_i`` and
    ``c_i`` are the means of the item's feature vectors and feature biases (e.g. its genres).
    Rare items borrow strength from items of the same genres, and an item that has features but
    no training ratings still gets a meaningful score. Parameter names follow fastai's
    ``EmbeddingDotBias`` (``u_weight``, ``i_weight``, ``u_bias``, ``i_bias``) plus ``f_weight`` and
    ``f_bias``; the item->feature table and the mask of items seen in training are buffers.

    Args:
        n_factors: latent factors.
        n_users, n_items: rows of the user and item tables (index 0 = unknown).
        feat_idx: ``(n_items, max_features)`` feature indices of each item (padding: weight 0).
        feat_w: ``(n_items, max_features)`` weights (1 / number of the item's features, or 0).
        n_features: number of distinct features.
        trained_items: ``(n_items,)`` bool, items with training ratings.
        y_range: sigmoid range, or ``None`` for a linear output.
    """

    def __init__(self, n_factors: int, n_users: int, n_items: int, feat_idx: torch.Tensor, feat_w: torch.Tensor,
                 n_features: int, trained_items: torch.Tensor, y_range: tuple[float, float] | None = None):
        super().__init__()
        from fastai.layers import Embedding

        self.y_range = y_range
        self.u_weight, self.i_weight = Embedding(n_users, n_factors), Embedding(n_items, n_factors)
        self.u_bias, self.i_bias = Embedding(n_users, 1), Embedding(n_items, 1)
        self.f_weight, self.f_bias = Embedding(max(1, n_features), n_factors), Embedding(max(1, n_features), 1)
        self.register_buffer("feat_idx", feat_idx.long())
        self.register_buffer("feat_w", feat_w.float())
        self.register_buffer("trained_items", trained_items.bool())
        self.last_rows: tuple[torch.Tensor, ...] | None = None

    def features(self, items: torch.Tensor | slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean feature vectors ``(len(items), n_factors)`` and biases ``(len(items),)`` of items."""
        fi, fw = self.feat_idx[items], self.feat_w[items].unsqueeze(-1)
        return (self.f_weight(fi) * fw).sum(1), (self.f_bias(fi) * fw).sum((1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = x[:, 0], x[:, 1]
        u, i = self.u_weight(users), self.i_weight(items)
        bu, bi = self.u_bias(users).view(-1), self.i_bias(items).view(-1)
        f, c = self.features(items)
        self.last_rows = (u, i, bu, bi) if self.training else None
        res = (u * (i + f)).sum(1) + bu + bi + c
        if self.y_range is None:
            return res
        return torch.sigmoid(res) * (self.y_range[1] - self.y_range[0]) + self.y_range[0]


def model_config(model: nn.Module) -> dict[str, Any]:
    """A JSON-able description from which :func:`build_model` rebuilds the same architecture."""
    if isinstance(model, (EmbeddingDotBias, HybridDotBias)):
        config = {
            "kind": "dot" if isinstance(model, EmbeddingDotBias) else "hybrid",
            "n_factors": model.u_weight.embedding_dim,
            "n_users": model.u_weight.num_embeddings,
            "n_items": model.i_weight.num_embeddings,
            "y_range": list(model.y_range) if model.y_range is not None else None,
        }
        if isinstance(model, HybridDotBias):
            config |= {"n_features": model.f_weight.num_embeddings, "max_features": model.feat_idx.shape[1],
                       "feature_names": list(getattr(model, "feature_names", []))}
        return config
    if isinstance(model, EmbeddingNN):
        blocks = [m for m in model.layers if isinstance(m, LinBnDrop)]
        linears = [next(x for x in b if isinstance(x, nn.Linear)) for b in blocks]
        dropouts = [next((x.p for x in b if isinstance(x, nn.Dropout)), 0.0) for b in blocks[:-1]]
        y_range = getattr(model.layers[-1], "low", None)
        return {
            "kind": "nn",
            "emb_szs": [[e.num_embeddings, e.embedding_dim] for e in model.embeds],
            "layers": [m.out_features for m in linears[:-1]],
            "use_bn": any(isinstance(x, nn.BatchNorm1d) for b in blocks[:-1] for x in b),
            "ps": dropouts,
            "embed_p": model.emb_drop.p,
            "y_range": [float(model.layers[-1].low), float(model.layers[-1].high)] if y_range is not None else None,
        }
    raise TypeError(f"not a cflearn/fastai collab model: {type(model).__name__}")


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build an untrained model from :func:`model_config`'s output."""
    y_range = tuple(config["y_range"]) if config.get("y_range") is not None else None
    if config["kind"] == "dot":
        return DotBias(config["n_factors"], config["n_users"], config["n_items"], y_range=y_range)
    if config["kind"] == "hybrid":
        n_items, width = config["n_items"], config["max_features"]
        model = HybridDotBias(config["n_factors"], config["n_users"], n_items, torch.zeros(n_items, width),
                              torch.zeros(n_items, width), config["n_features"], torch.zeros(n_items), y_range)
        model.feature_names = list(config.get("feature_names", []))
        return model
    if config["kind"] == "nn":
        cfg = tabular_config(y_range=y_range, use_bn=config.get("use_bn", True), embed_p=config.get("embed_p", 0.0))
        if config.get("ps"):
            cfg["ps"] = list(config["ps"])
        return EmbeddingNN(emb_szs=[tuple(e) for e in config["emb_szs"]], layers=list(config["layers"]), **cfg)
    raise ValueError(f"unknown model kind {config['kind']!r}")


def embedding_tables(model: nn.Module) -> dict[tuple[int, str], nn.Embedding]:
    """The model's embedding tables keyed by (input column, name): column 0 is users, 1 items."""
    if isinstance(model, (EmbeddingDotBias, HybridDotBias)):
        return {(0, "u_weight"): model.u_weight, (1, "i_weight"): model.i_weight,
                (0, "u_bias"): model.u_bias, (1, "i_bias"): model.i_bias}
    if isinstance(model, EmbeddingNN):
        return {(0, "user"): model.embeds[0], (1, "item"): model.embeds[1]}
    raise TypeError(f"not a cflearn/fastai collab model: {type(model).__name__}")


def trained_rows(model: nn.Module, col: int) -> torch.Tensor | slice:
    """Rows of the user (``col=0``) or item (``col=1``) tables that training updates."""
    mask = getattr(model, "trained_items", None)
    if col == 1 and mask is not None:
        return mask
    return slice(1, None)


@torch.no_grad()
def factor_tables(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(user vectors, user biases, item vectors, item biases)`` such that the raw score of a pair is
    ``<u, i> + b_u + b_i`` (hybrid items include their features), or ``None`` for models without
    that form (``EmbeddingNN``)."""
    if isinstance(model, EmbeddingDotBias):
        return (model.u_weight.weight, model.u_bias.weight[:, 0], model.i_weight.weight, model.i_bias.weight[:, 0])
    if isinstance(model, HybridDotBias):
        f, c = model.features()
        items, bias = model.i_weight.weight + f, model.i_bias.weight[:, 0] + c
        return model.u_weight.weight, model.u_bias.weight[:, 0], items, bias
    return None
