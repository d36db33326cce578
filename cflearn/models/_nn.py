"""fastai's ``EmbeddingNN`` as a cflearn model kind (``"nn"``), in a module of its own so that
:mod:`cflearn.models` (and loading any other kind) does not import fastai."""

from __future__ import annotations

from typing import Any

import torch
from fastai.collab import EmbeddingNN
from fastai.layers import LinBnDrop, SigmoidRange
from fastai.tabular.model import tabular_config
from torch import nn

from ._checks import y_range_of
from ._contract import Contract, TableKey

__all__ = ["NN"]


class NN(EmbeddingNN, Contract):
    """fastai's ``EmbeddingNN`` (same parameters), returning one score per row: ``(n,)``, not ``(n, 1)``.

    Its output transform is fastai's ``SigmoidRange`` inside ``layers`` (the same formula as
    :func:`squash`); it has no factor tables, so it is scored by forward passes.
    """

    kind = "nn"

    def __init__(self, emb_szs: list[tuple[int, int]], layers: list[int], **kwargs: Any):
        super().__init__(emb_szs=emb_szs, layers=layers, **kwargs)
        self.y_range = tuple(kwargs["y_range"]) if kwargs.get("y_range") is not None else None

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x_cat, x_cont).view(-1)

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw  # SigmoidRange is the last layer

    def embeddings(self) -> dict[TableKey, nn.Embedding]:
        return {(0, "user"): self.embeds[0], (1, "item"): self.embeds[1]}

    def config(self) -> dict[str, Any]:
        blocks = [m for m in self.layers if isinstance(m, LinBnDrop)]
        linears = [next(x for x in b if isinstance(x, nn.Linear)) for b in blocks]
        last = self.layers[-1]
        return {
            "kind": self.kind,
            "emb_szs": [[e.num_embeddings, e.embedding_dim] for e in self.embeds],
            "layers": [m.out_features for m in linears[:-1]],
            "use_bn": any(isinstance(x, nn.BatchNorm1d) for b in blocks[:-1] for x in b),
            "ps": [next((x.p for x in b if isinstance(x, nn.Dropout)), 0.0) for b in blocks[:-1]],
            "embed_p": self.emb_drop.p,
            "y_range": [float(last.low), float(last.high)] if isinstance(last, SigmoidRange) else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NN:
        embed_p, ps = config.get("embed_p", 0.0), list(config.get("ps") or [])
        for p in (embed_p, *ps):
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
                raise ValueError(f"dropout probabilities must be numbers in [0, 1), got {p!r}")
        if not isinstance(config.get("use_bn", True), bool):
            raise ValueError(f"use_bn must be true or false, got {config.get('use_bn')!r}")
        cfg = tabular_config(y_range=y_range_of(config, required=True), use_bn=config.get("use_bn", True),
                             embed_p=embed_p)
        if ps:
            cfg["ps"] = ps
        return cls(emb_szs=[(int(a), int(b)) for a, b in config["emb_szs"]], layers=list(config["layers"]), **cfg)
