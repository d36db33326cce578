"""LazyAdamW: AdamW that updates only the embedding rows a batch touched (sparse gradients)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from fastai.optimizer import OptimWrapper

__all__ = ["LazyAdamW", "lazy_adamw", "adamw"]


class LazyAdamW(torch.optim.Optimizer):
    """AdamW for models with sparse embedding gradients (``nn.Embedding(sparse=True)``).

    For a sparse gradient only the rows present in the batch are updated: their moments, their
    decoupled weight decay and their step (as TensorFlow's LazyAdam). The cost of a step is then
    proportional to the batch, not to the size of the tables, which is what keeps training on
    millions of users and items fast. Dense gradients get the ordinary AdamW update. Bias
    correction uses the optimizer's global step.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        betas: moment decay rates (fastai's defaults: 0.9, 0.99).
        eps: added to the denominator (fastai's default: 1e-5).
        weight_decay: decoupled weight decay, applied to the updated rows only.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-5, weight_decay: float = 0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid LazyAdamW settings lr={lr}, betas={betas}, eps={eps}, wd={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D102
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                bc1, bc2 = 1 - b1 ** state["step"], 1 - b2 ** state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if p.grad.is_sparse:
                    grad = p.grad.coalesce()
                    rows, g = grad.indices()[0], grad.values()
                    m_rows = m.index_select(0, rows).mul_(b1).add_(g, alpha=1 - b1)
                    v_rows = v.index_select(0, rows).mul_(b2).addcmul_(g, g, value=1 - b2)
                    m.index_copy_(0, rows, m_rows)
                    v.index_copy_(0, rows, v_rows)
                    w = p.index_select(0, rows)
                    if wd:
                        w.mul_(1 - lr * wd)
                    w.addcdiv_(m_rows, v_rows.div_(bc2).sqrt_().add_(eps), value=-lr / bc1)
                    p.index_copy_(0, rows, w)
                else:
                    g = p.grad
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    if wd:
                        p.mul_(1 - lr * wd)
                    p.addcdiv_(m, (v / bc2).sqrt_().add_(eps), value=-lr / bc1)
        return loss


def lazy_adamw(params: Any, lr: float = 1e-3, **kwargs: Any) -> OptimWrapper:
    """:class:`LazyAdamW` wrapped for fastai (``Learner(opt_func=lazy_adamw)``); one-cycle schedules work."""
    return OptimWrapper(params, opt=LazyAdamW, lr=lr, **kwargs)


def _adamw(params: Any, **kwargs: Any) -> torch.optim.AdamW:
    """PyTorch's fused AdamW (one kernel per step: about 5x faster than multi-tensor on CPU), or its
    multi-tensor AdamW where the parameters' device has no fused kernel."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kwargs)


def adamw(params: Any, lr: float = 1e-3, **kwargs: Any) -> OptimWrapper:
    """PyTorch's AdamW (fused where the device has the kernel) with fastai's Adam defaults (betas
    0.9/0.99, eps 1e-5), for fastai."""
    return OptimWrapper(params, opt=_adamw, lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.0, **kwargs)
