"""Data-parallel training with PyTorch's DistributedDataParallel, launched by ``torchrun``.

cflearn notices ``torchrun`` (the whole set of variables it sets,
:func:`cflearn.train._launch.torchrun_env`) or a process group you started, and then: each rank
trains on its own shard of every epoch's shuffled order (rows, or a ranking head's users; the per-rank
batch is ``bs / N``, so a step sees the same total batch as one process); DDP averages the
gradients (dense ones: the tables do not use sparse gradients under DDP); every rank validates
on the whole validation set, so losses and metrics are those of one process; only rank
0 writes files. The same seed and the same number of processes give the same result.
"""

from __future__ import annotations

import atexit
import datetime as dt
import inspect
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .._errors import ConfigError, first_line
from ._launch import torchrun_env

__all__ = ["world", "rank", "is_main", "init_from_env", "leave", "unwrap", "ddp", "sync_buffers"]

TIMEOUT_S = int(os.environ.get("CFLEARN_DIST_TIMEOUT", "120"))
"""Seconds a rank waits for the others in a collective before the run fails (never a hang)."""


def init_from_env(device: torch.device | None = None) -> bool:
    """Join the process group ``torchrun`` describes in the environment, once; ``True`` when distributed.

    A group you initialised yourself is used as it is. Backend: NCCL on CUDA, else gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    job = torchrun_env()
    if job is None or job.world <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.set_device(job.local_rank)
    _import_dynamo()
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=dt.timedelta(seconds=TIMEOUT_S))
    except Exception as e:  # noqa: BLE001  (a store timeout, a refused connection, a bad address ...)
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        raise ConfigError(f"could not join the other {job.world - 1} training process(es) at {where} within "
                          f"{TIMEOUT_S} s ({type(e).__name__}: {first_line(e)[:120]}); start them all together with "
                          "torchrun or cflearn fit --nproc N") from None
    atexit.register(leave, timeout=10)  # a gloo group torn down alone at exit can abort the process
    return dist.get_world_size() > 1


def _import_dynamo() -> None:
    """Import ``torch._dynamo`` before the group exists. DistributedDataParallel imports it on first use, and
    that import keeps references to the default group that nothing releases (torch 2.13): the group then
    outlives :func:`leave`, its gloo threads run into interpreter finalization, and a rank could abort
    at exit ("terminate called without an active exception") after its work was done. A torch without a
    working ``torch._dynamo`` is left to DDP to report."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001  (DistributedDataParallel needs it, and says what is wrong)
        pass


def leave(timeout: float = TIMEOUT_S) -> None:
    """Leave the process group together: a barrier (at most ``timeout`` seconds on gloo), then
    destroy it, so that no rank tears it down while another still uses it. At exit the wait is
    short: a rank that failed alone must not block."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if dist.get_world_size() > 1:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=dt.timedelta(seconds=timeout))
            else:
                dist.barrier()
    except RuntimeError:
        pass  # a peer is gone: leave anyway
    finally:
        dist.destroy_process_group()


def world() -> int:
    """Number of processes training together (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes outputs and prints (rank 0; before the group is joined, torchrun's
    ``RANK`` says: a run's first lines were printed by every rank)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    job = torchrun_env()
    return job is None or job.rank == 0


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm statistics, feature tables) to every rank."""
    if world() > 1:
        for buf in unwrap(model).buffers():
            dist.broadcast(buf, 0)


def ddp(model: nn.Module) -> DistributedDataParallel:
    """``model`` wrapped in ``DistributedDataParallel`` (buffers are synced per epoch, not per batch)."""
    dev = next(model.parameters()).device
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync: dict[str, Any] = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
                               else {"broadcast_buffers": False})
    # fastai's EmbeddingNN keeps an empty BatchNorm for its (absent) continuous inputs: parameters no forward uses
    unused = any(p.numel() == 0 for p in model.parameters())
    return DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None,
                                   find_unused_parameters=unused, **no_sync)
