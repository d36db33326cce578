"""Whether a student's model can learn: with known weights, its output and the gradient of a loss
reach every table the question names, as in the reference model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ._question import per_row
from ._remote import Layer, Model

__all__ = ["trains_like", "Table"]


Table = tuple[Layer, torch.Tensor]
"""A parameter a question names: the layer that holds it as ``.weight`` and the known value it gets."""


def trains_like(model: Model, tables: Mapping[str, Table], users: torch.Tensor, items: torch.Tensor,
                reference: Callable[[dict[str, torch.Tensor]], torch.Tensor], where: str, *,
                eval: bool = False) -> str | None:
    """``None`` when the model learns as the reference does, else what stops it, in words.

    Args:
        model: the student's model, in the notebook.
        tables: each parameter the question names -> (its layer, the known value its weight gets).
        users, items: the batch.
        reference: the reference output from the known values (one tensor each, same keys).
        where: how the call reads in a message.
        eval: run the model in eval mode (dropout off).
    """
    n = len(users)
    known = {k: v.clone().requires_grad_() for k, (_, v) in tables.items()}
    want = reference(known)
    target = torch.linspace(-1.0, 1.0, n) + want.detach()
    run = model.run({layer.index: value for layer, value in tables.values()}, users, items, target=target, eval=eval)
    out: Any = run.out
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (n, 1):
        out = out[:, 0]
    per_row(out, n)  # Wrong naming the shape unless it is one number per row
    if not torch.allclose(out.detach().float(), want.detach(), atol=1e-4, rtol=1e-4):
        return f"with known weights, {where} returns {_few(out)} where the reference model returns {_few(want)}"
    if not out.requires_grad:
        return (f"{where}'s output does not depend on any weight that can learn (no gradient reaches the model): "
                "look the vectors up by calling the layers (`self.user_factors(users)`), not through `.weight.data`, "
                "`.detach()` or `torch.no_grad()`")
    ((want - target) ** 2).mean().backward()
    for words, (layer, _) in tables.items():
        got, ref = run.grads[layer.index], known[words].grad
        assert ref is not None
        if got is None or (not got.any() and ref.any()):
            return (f"no gradient reaches the {words} in {where}, so training never changes them: use the layer "
                    "itself in forward, not `.weight.data`, `.detach()` or a copy")
        if not torch.allclose(got.float(), ref, atol=1e-5, rtol=1e-3):
            return (f"in {where} the gradient of a loss with respect to the {words} is not the reference model's: one "
                    "optimizer step would move them differently")
    return None


def _few(t: torch.Tensor) -> str:
    values = t.detach().reshape(-1)[:4].tolist()
    return "[" + ", ".join(f"{v:.4f}" for v in values) + (", ...]" if t.numel() > 4 else "]")
