"""Whether a student's model can learn: with known weights, its output and the gradient of a loss
reach every table the question names, as in the reference model."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from ._question import per_row

__all__ = ["trains_like", "Table"]


Table = tuple[nn.Embedding | nn.Linear, torch.Tensor]
"""A parameter a question names: the layer that holds it as ``.weight`` and the known value it gets."""


def trains_like(tables: Mapping[str, Table], forward: Callable[[], torch.Tensor],
                reference: Callable[[dict[str, torch.Tensor]], torch.Tensor], n: int, where: str) -> str | None:
    """``None`` when the model learns as the reference does, else what stops it, in words.

    Args:
        tables: each parameter the question names -> (the module holding it as ``.weight``, the known
            value it gets). Its ``.weight`` is set to that value first.
        forward: runs the student's model on a batch of ``n`` rows.
        reference: the reference output from the known values (one tensor each, same keys).
        n: the batch's rows.
        where: how the call reads in a message.
    """
    with torch.no_grad():
        for module, value in tables.values():
            module.weight.copy_(value)
            module.weight.grad = None
    out = forward()
    if tuple(out.shape) == (n, 1):
        out = out[:, 0]
    per_row(out, n)  # Wrong naming the shape unless it is one number per row
    known = {k: v.clone().requires_grad_() for k, (_, v) in tables.items()}
    want = reference(known)
    if not torch.allclose(out.detach().float(), want.detach(), atol=1e-4, rtol=1e-4):
        return f"with known weights, {where} returns {_few(out)} where the reference model returns {_few(want)}"
    target = torch.linspace(-1.0, 1.0, n) + want.detach()
    if not out.requires_grad:
        return (f"{where}'s output does not depend on any weight that can learn (no gradient reaches the model): "
                "look the vectors up by calling the layers (`self.user_factors(users)`), not through `.weight.data`, "
                "`.detach()` or `torch.no_grad()`")
    ((out.float() - target) ** 2).mean().backward()
    ((want - target) ** 2).mean().backward()
    for words, (module, _) in tables.items():
        got, ref = module.weight.grad, known[words].grad
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

