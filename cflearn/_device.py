"""Where a model lives: the device a caller asks for, checked (shared by training and loading)."""

from __future__ import annotations

import torch

from ._errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:0'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu'")
    if dev.type == "meta":
        raise ConfigError("device='meta' holds no data, so nothing can train or predict on it; use 'cpu' or 'cuda'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps' (Apple GPU) is not available in this torch build; use device='cpu'")
    return dev
