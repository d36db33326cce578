"""Safe model files: weights in safetensors, everything else as JSON in its header. No pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .collab import CollabModel, as_collab
from .errors import ModelFileError
from .io import atomic_write_bytes, json_default
from .models import build_model, model_config
from .vocab import Vocab

if TYPE_CHECKING:
    from fastai.learner import Learner

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_KEY = "cflearn"
_EXTRA = ("seen_indptr", "seen_items", "item_counts")  # saved beside the weights, under "cflearn."


def _versions() -> dict[str, str]:
    import fastai

    from . import __version__

    return {"cflearn": __version__, "fastai": fastai.__version__, "torch": torch.__version__}


def save(learn: Learner | CollabModel, path: str | Path) -> Path:
    """Save a trained model to one ``.safetensors`` file, atomically.

    The file holds the weights (safetensors) and, as JSON in its header, the vocabularies, model
    config, y_range, rating scale, preset, column names, item metadata, format and library
    versions. Nothing in it is executable; :func:`load` never unpickles.

    Args:
        learn: a learner from :func:`cflearn.collab_learner` or a loaded model.
        path: the file to write (parent folders are created). An interrupted save leaves the
            previous file (or none) under this name, never a partial one.

    Returns:
        The path written.
    """
    cf = as_collab(learn)
    meta = {
        "format": "cflearn-model",
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "model": model_config(cf.model),
        "users": cf.users.to_list(),
        "items": cf.items.to_list(),
        "scale": list(cf.scale),
        "preset": cf.preset,
        "columns": cf.columns,
        "global_mean": cf.global_mean,
        "item_info": _table_to_json(cf.item_info, cf.items),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in cf.model.state_dict().items()}
    for name in _EXTRA:
        if getattr(cf, name) is not None:
            tensors[f"{_KEY}.{name}"] = getattr(cf, name).cpu().contiguous()
    blob = safetensors_bytes(tensors, metadata={_KEY: json.dumps(meta, default=json_default)})
    return atomic_write_bytes(path, blob)


def load(path: str | Path, device: str | torch.device = "cpu") -> CollabModel:
    """Load a model saved by :func:`save` without unpickling anything.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the weights.

    Returns:
        CollabModel: ready for :func:`cflearn.predict` (no training data needed).

    Raises:
        ModelFileError: missing, truncated or corrupted file, not a cflearn model, a newer format
            version, tampered metadata, or tensors whose shapes do not match the config.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path} is not a readable safetensors model file (truncated or corrupted?): "
                             f"{e}") from None
    if _KEY not in header:
        raise ModelFileError(f"{path} is a safetensors file but not a cflearn model (no '{_KEY}' metadata); "
                             "save models with cflearn.save")
    try:
        meta = json.loads(header[_KEY])
        if meta.get("format") != "cflearn-model":
            raise ValueError("wrong format tag")
        version = int(meta["format_version"])
        if version > FORMAT_VERSION:
            raise ModelFileError(f"{path} uses model format {version}, newer than this cflearn reads "
                                 f"({FORMAT_VERSION}); upgrade cflearn (pip install -U cflearn)")
        if version < 1:
            raise ValueError(f"bad format_version {version}")
        config = meta["model"]
        users, items = Vocab.from_list(meta["users"]), Vocab.from_list(meta["items"])
        scale = (float(meta["scale"][0]), float(meta["scale"][1]))
        model = build_model(config)
    except ModelFileError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise ModelFileError(f"{path} has damaged or tampered metadata ({type(e).__name__}: {e}); "
                             "re-save the model from its learner") from None
    extra = {name: tensors.pop(f"{_KEY}.{name}", None) for name in _EXTRA}
    expected = model.state_dict()
    problems = [k for k in expected if k not in tensors or tensors[k].shape != expected[k].shape]
    problems += [k for k in tensors if k not in expected]
    if problems:
        k = problems[0]
        got = tuple(tensors[k].shape) if k in tensors else "missing"
        want = tuple(expected[k].shape) if k in expected else "unexpected"
        raise ModelFileError(f"{path}: weights do not match the model config ({k}: file {got}, config {want}); "
                             "the file was altered or mixed with another model")
    n_users, n_items = _table_rows(model)
    if (n_users, n_items) != (len(users), len(items)):
        raise ModelFileError(f"{path}: vocabularies ({len(users) - 1} users, {len(items) - 1} items) do not match "
                             f"the weights ({n_users - 1}, {n_items - 1}); the metadata was altered")
    model.load_state_dict(tensors)
    model.to(torch.device(device)).eval()
    return CollabModel(model=model, users=users, items=items, scale=scale, preset=meta.get("preset", {}),
                       columns=meta.get("columns", {}), global_mean=float(meta.get("global_mean", sum(scale) / 2)),
                       item_info=_table_from_json(meta.get("item_info")), **_checked_extra(extra, users, items, path))


def _checked_extra(extra: dict[str, torch.Tensor | None], users: Vocab, items: Vocab, path: Path) -> dict:
    """The seen-item lists and item counts, checked against the vocabularies."""
    indptr, seen, counts = extra["seen_indptr"], extra["seen_items"], extra["item_counts"]
    if indptr is None:
        return {}
    ok = (indptr.ndim == 1 and len(indptr) == len(users) + 1 and counts is not None and len(counts) == len(items)
          and seen is not None and int(indptr[-1]) == len(seen) and (len(seen) == 0 or int(seen.max()) < len(items)))
    if not ok:
        raise ModelFileError(f"{path}: the seen-item lists do not match the vocabularies; the file was altered")
    return {"seen_indptr": indptr.long(), "seen_items": seen.int(), "item_counts": counts.long()}


def _table_rows(model: torch.nn.Module) -> tuple[int, int]:
    from .models import embedding_tables

    tables = embedding_tables(model)
    return (next(t.num_embeddings for (c, _), t in tables.items() if c == 0),
            next(t.num_embeddings for (c, _), t in tables.items() if c == 1))


def _table_to_json(table: pd.DataFrame | None, vocab: Vocab) -> dict[str, Any] | None:
    if table is None:
        return None
    table = table[table.index.isin(vocab.ids)]
    cols = [c for c in table.columns if table[c].dtype.kind in "biufO" or str(table[c].dtype) in ("str", "string")]
    return {"index_name": table.index.name, "index": [_plain(v) for v in table.index],
            "columns": {str(c): [_plain(v) for v in table[c]] for c in cols}}


def _table_from_json(obj: dict[str, Any] | None) -> pd.DataFrame | None:
    if not obj:
        return None
    df = pd.DataFrame(obj["columns"], index=pd.Index(obj["index"], name=obj.get("index_name")))
    return df


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and v != v else v

