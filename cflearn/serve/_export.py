"""Safe model files: weights in safetensors, everything else as JSON in its header. No pickle."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .._device import resolve_device
from .._errors import ConfigWarning, DataError, ModelFileError
from .._io import atomic_write_bytes, json_default
from ..data._vocab import Vocab
from ..kinds import build_model
from ..kinds._presets import Preset, y_range_for
from ..models import Tables, contract, item_item_head, ranking_head, rating_head
from ..models._checks import range_list
from ..train._distributed import is_main
from ._answers import table_from_json
from ._collab import CollabModel, as_collab
from ._file import EXTRA as _EXTRA
from ._file import FORMAT_VERSION, HEADER_LIMIT, SERVE_PREFIX, digest, header_digest
from ._file import KEY as _KEY
from ._fold import rating_noise
from ._recommend import lists_vs_chart
from ._scoring import NO_HELP, eval_mode

if TYPE_CHECKING:
    from fastai.learner import Learner

__all__ = ["save", "load", "check_header_size", "FORMAT_VERSION", "HEADER_LIMIT"]

def _versions() -> dict[str, str]:
    import fastai

    from .. import __version__

    return {"cflearn": __version__, "fastai": fastai.__version__, "torch": torch.__version__}


def save(learn: Learner | CollabModel, path: str | Path) -> Path:
    """Save a trained model to one ``.safetensors`` file, atomically.

    The file holds the weights (safetensors) and, as JSON in its header, the vocabularies, model
    config, y_range, rating scale, preset, column names, item metadata, format and library
    versions. Nothing in it is executable; :func:`load` never unpickles.

    Args:
        learn: a trained learner from :func:`cflearn.collab_learner` or a loaded model.
        path: the file to write (parent folders are created). An interrupted save leaves the
            previous file (or none) under this name, never a partial one. Under distributed
            training only rank 0 writes (every rank holds the same weights).

    Returns:
        The path written.

    A model of your own class (``collab_learner(data, model=...)``) is saved as its weights and
    class name; loading it needs the class: ``cflearn.load(path, model=YourModule(...))`` (a
    warning says so).
    """
    cf = as_collab(learn)
    cf.require_trained()
    if not is_main():  # distributed training: every rank holds the same weights; rank 0 writes
        return Path(path)
    config = cf.contract.config()
    if config["kind"] == "custom":
        warnings.warn(f"{Path(path).name} holds the weights of your own {config['class']}; loading it needs the "
                      f"class: cflearn.load(path, model={type(cf.model).__name__}(...)) with the same sizes",
                      ConfigWarning, stacklevel=2)
    meta = {
        "format": "cflearn-model",
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "model": config,
        "users": None,  # format 3: the vocabularies are tensors ("cflearn.users.*"), not header JSON
        "items": None,
        "scale": list(cf.scale),
        "preset": cf.preset.to_dict(),
        "columns": cf.columns,
        "global_mean": cf.global_mean,
        "implicit": cf.implicit,
        "item_info": _table_to_json(cf.item_info, cf.items),
        "fold_noise": None if cf.implicit else rating_noise(cf),  # fold-in's prior travels with the model
        "fold_lists": _fold_lists(cf),  # how a new user's list is made: travels with the model
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in cf.model.state_dict().items()}
    for name in _EXTRA:
        if getattr(cf, name) is not None:
            tensors[f"{_KEY}.{name}"] = getattr(cf, name).cpu().contiguous()
    for side, vocab in (("users", cf.users), ("items", cf.items)):
        kind, arrays = vocab.to_arrays()
        meta[side] = {"kind": kind}
        for name, array in arrays.items():
            tensors[f"{_KEY}.{side}.{name}"] = torch.from_numpy(array)
    meta["serving"], served = _serving(cf.model)
    tensors.update(served)
    meta["checksums"] = {name: _digest(t) for name, t in tensors.items()}  # format 5: an altered tensor is refused
    meta = json.loads(json.dumps(meta, default=json_default))  # as the file will hold it
    meta["header_digest"] = header_digest(meta)  # format 6: an edited header field is refused too
    header = json.dumps(meta)
    if len(header) > HEADER_LIMIT:  # safetensors' own error says only "header too large"
        raise DataError(f"{Path(path).name}: the model's header would hold {len(header) / 1e6:,.0f} MB of text, over "
                        f"the file format's {HEADER_LIMIT // 1_000_000} MB: shorten the items table's text columns "
                        "or the feature labels, and train again")
    blob = safetensors_bytes(tensors, metadata={_KEY: header})
    return atomic_write_bytes(path, blob)


def _fold_lists(cf: CollabModel) -> float | None:
    """:func:`cflearn.serve._recommend.lists_vs_chart` for the models fold-in serves (with user/item tables) whose lists
    come from predicted ratings; ``None`` for the others (a ranking head's lists need no such check)."""
    if cf.contract.list_kind != "rating":
        return None
    with torch.no_grad():
        if cf.contract.tables() is None:
            return None
    return lists_vs_chart(cf)


def check_header_size(cf: CollabModel) -> None:
    """Refuse, before training, a model whose file header would pass :data:`HEADER_LIMIT`: the items table
    (saved with the model for its titles and metadata) and the model's config (a hybrid's feature labels),
    where huge text (10^6 long tags) trained and then failed at save with "header too large"."""
    info = cf.item_info
    if info is not None:
        info = info[info.index.isin(cf.items.ids)]
    sizes: dict[str, int] = {}
    if info is not None:
        for col in info.columns:
            values = info[col]
            rough = int(values.astype(str).str.len().sum()) + 4 * len(values) if values.dtype.kind in "OUS" or \
                str(values.dtype) in ("str", "string") else 12 * len(values)
            sizes[f"the items table's column {str(col)!r}"] = rough
    sizes["the model's config (its feature labels)"] = len(json.dumps(cf.contract.config(), default=json_default))
    total = sum(sizes.values())
    if total <= HEADER_LIMIT * 0.9:
        return
    big = sorted((k for k in sizes if sizes[k] >= 0.1 * total), key=lambda k: -sizes[k])
    raise DataError(f"this model could train but never be saved: a model file's header holds at most "
                    f"{HEADER_LIMIT // 1_000_000} MB of text, and this one would need about {total / 1e6:,.0f} MB ("
                    + ", ".join(f"{k} {sizes[k] / 1e6:,.0f} MB" for k in big) + "); drop or shorten the long text "
                    "(cflearn.from_df(..., items=items.drop(columns=[...])), feature labels of a few words)")


def _looks_like_text(path: Path) -> bool:
    """Whether a file starts like text (a CSV, JSON...), not like safetensors (8 bytes of header length)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if len(head) < 8:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text[:8].isprintable()  # safetensors begins with its header length: 8 bytes, never all printable


def _check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """No NaN or infinite weight (a user's or item's mean rating is NaN when it has none: not infinite)."""
    for name, t in tensors.items():
        if not t.is_floating_point():
            continue
        means = name.endswith("_means")
        if bool(torch.isinf(t).any()) if means else not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{path}: tensor {name.removeprefix(_KEY + '.')!r} holds NaN or infinite values; "
                                 "the file was altered or the model diverged: retrain and save it again")


def _digest(t: torch.Tensor) -> str:
    """A short SHA-256 of a tensor's dtype, shape and bytes (:func:`cflearn.serve._file.digest`)."""
    return digest(t.detach().cpu().numpy())



def _serving(model: torch.nn.Module) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """What a saved model scores with, for :mod:`cflearn.serve._served` (NumPy, no torch): the header's
    ``serving`` record and the tables it names that are not weights already (a hybrid's or a ranking head's
    computed tables, saved under :data:`~cflearn.serve._file.SERVE_PREFIX`). ``None`` for a model without tables
    (preset ``book_nn``, your own module). A :class:`cflearn.models.Blend` (preset ``rank``'s two heads) is its
    learned head's tables, its EASE head's arrays and its ``mix``; a pair's score is its list's."""
    spec = contract(model)
    names = {(t.data_ptr(), t.numel()): name for name, t in model.state_dict().items() if t.numel()}
    extra: dict[str, torch.Tensor] = {}

    def named(role: str, t: torch.Tensor) -> str:
        found = names.get((t.data_ptr(), t.numel())) if t.numel() and t.is_contiguous() else None
        if found is not None:  # a weight or buffer saved already
            return found
        t = t.detach().cpu()
        extra[f"{SERVE_PREFIX}{role}"] = (t.float() if t.is_floating_point() else t).contiguous().clone()
        return f"{SERVE_PREFIX}{role}"

    def tables(role: str, got: Tables | None) -> dict[str, str] | None:
        return None if got is None else {part: named(f"{role}.{part}", t) for part, t in got._asdict().items()}

    if spec.kind in ("custom", "nn"):
        return None, {}
    blend = spec.kind == "blend"
    with eval_mode(model), torch.no_grad():
        pairs = contract(ranking_head(model)).list_tables() if blend else spec.tables()  # type: ignore[arg-type]
        record: dict[str, Any] = {"score_kind": spec.score_kind, "list_kind": spec.list_kind,
                                  "pairs": tables("pairs", pairs), "y_range": range_list(spec.y_range)}
        head = item_item_head(model)
        if head is not None:
            record["lists"] = {"item_item": {name: named(f"lists.{name}", head.get_buffer(name))
                                             for name in ("hist_indptr", "hist_items", "keep", "weights", "floor")}}
            if blend:  # the learned head's part of the list is the pairs' tables, without the user bias
                record["lists"]["mix"] = named("lists.mix", spec.get_buffer("mix"))  # type: ignore[attr-defined]
        else:
            record["lists"] = {"tables": tables("lists", spec.list_tables())}
        for col, side in ((0, "users"), (1, "items")):
            rows = spec.trained_rows(col)
            record[f"trained_{side}"] = named(f"trained_{side}", rows) if isinstance(rows, torch.Tensor) else None
        weight = float(getattr(rating_head(model), "user_feature_weight", 1.0))
        record["features_label"] = "user features" if weight > 0 else NO_HELP
    if record["pairs"] is None or record["lists"].get("tables", True) is None:
        return None, {}
    return record, extra


def _check_digests(meta: dict[str, Any], tensors: dict[str, torch.Tensor], version: int) -> None:
    """Format 5 files carry a checksum of every tensor: a tensor changed, added or removed after saving is
    refused (``ValueError`` naming it)."""
    if version < 5:
        return
    if version >= 6 and meta.get("header_digest") != header_digest(meta):
        raise ValueError("the header does not match its digest (a field was edited after saving)")
    sums = meta.get("checksums")
    if not isinstance(sums, dict):
        raise ValueError("the tensors' checksums are missing")
    if set(sums) != set(tensors):
        extra = sorted(set(sums) ^ set(tensors))[0]
        raise ValueError(f"the file's tensors do not match its checksums ({extra!r})")
    for name, t in tensors.items():
        if sums[name] != _digest(t):
            raise ValueError(f"tensor {name!r} does not match its checksum")


def load(path: str | Path, device: str | torch.device = "cpu", *, model: torch.nn.Module | None = None) -> CollabModel:
    """Load a model saved by :func:`save` without unpickling anything.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the weights.
        model: for a file of your own module's weights: a fresh instance of that class (same
            sizes) to load them into. Not used for cflearn's own kinds.

    Returns:
        CollabModel: ready for :func:`cflearn.predict` (no training data needed).

    Raises:
        ModelFileError: missing, truncated or corrupted file, not a cflearn model, a newer format
            version, tampered metadata, or tensors whose shapes do not match the config.
    """
    dev = resolve_device(device)
    path = Path(path)
    if path.is_dir():
        hint = f" ({path / 'model.safetensors'})" if (path / "model.safetensors").is_file() else ""
        raise ModelFileError(f"{path} is a folder; give the model file in it{hint}")
    if path.exists() and not path.is_file():
        raise ModelFileError(f"{path} is not a regular file (a device or a pipe); give a model file")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if _looks_like_text(path):
            raise ModelFileError(f"{path} is a text file (a ratings table?), not a model file: give the "
                                 "model.safetensors a `cflearn fit` run wrote") from None
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
        if not isinstance(config, dict) or not isinstance(config.get("kind"), str):
            raise ValueError("the model config is not an object with a 'kind'")
        if version < 5 and config["kind"] in ("dual", "rank"):  # written since format 5: an older one is a downgrade
            raise ValueError(f"a {config['kind']!r} model in format {version}, which has no checksums; cflearn writes "
                             "these as format 5 or later")
        _check_finite(tensors, path)  # a diverged model's NaN says so before any checksum does
        _check_digests(meta, tensors, version)
        users, items = (_vocab(meta, side, tensors) for side in ("users", "items"))
        scale = (float(meta["scale"][0]), float(meta["scale"][1]))
        global_mean = float(meta.get("global_mean", sum(scale) / 2))
        if not all(math.isfinite(v) for v in (*scale, global_mean)):
            raise ValueError(f"non-finite scale {scale} or global mean {global_mean}")
        if scale[0] > scale[1]:
            raise ValueError(f"the rating scale {list(scale)} is reversed (low > high)")
        _check_fields(meta)
        preset = Preset.from_dict(meta.get("preset") or {})
        fold_noise = meta.get("fold_noise")
        if fold_noise is not None and not (isinstance(fold_noise, (int, float)) and math.isfinite(fold_noise)
                                           and fold_noise > 0):
            raise ValueError(f"fold_noise must be a positive number, got {fold_noise!r}")
        fold_lists = meta.get("fold_lists")
        if fold_lists is not None and not (isinstance(fold_lists, (int, float)) and not isinstance(fold_lists, bool)
                                           and math.isfinite(fold_lists) and fold_lists >= 0):
            raise ValueError(f"fold_lists must be a non-negative number, got {fold_lists!r}")
        if version < 4 and config["kind"] == "hybrid":
            tensors = _old_hybrid(tensors, version, config)
        with torch.device("meta"):  # the sizes the header claims, checked before anything is allocated
            probe = _model_for(config, None if model is None else model, path, probe=True)
        expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    except ModelFileError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, OverflowError,
            RecursionError) as e:
        raise ModelFileError(f"{path} has damaged or tampered metadata ({type(e).__name__}: {str(e)[:200]}); "
                             "re-save the model from its learner") from None
    extra = {name: tensors.pop(f"{_KEY}.{name}", None) for name in _EXTRA}
    served = {k: tensors.pop(k) for k in list(tensors) if k.startswith(SERVE_PREFIX)}
    problems = [k for k in expected if k not in tensors or tuple(tensors[k].shape) != expected[k]]
    problems += [k for k in tensors if k not in expected]
    if problems:
        k = problems[0]
        got = tuple(tensors[k].shape) if k in tensors else "missing"
        want = expected[k] if k in expected else "unexpected"
        raise ModelFileError(f"{path}: weights do not match the model config ({k}: file {got}, config {want}); "
                             "the file was altered or mixed with another model")
    model = _model_for(config, model, path)
    for (col, name), table in contract(model).embeddings().items():
        rows, vocab = table.num_embeddings, (users, items)[col]
        if rows != len(vocab):
            raise ModelFileError(f"{path}: the {('user', 'item')[col]} vocabulary ({len(vocab) - 1} IDs) does not "
                                 f"match the weights ({name}: {rows - 1} rows); the metadata was altered")
    model.load_state_dict(tensors)
    try:
        contract(model).validate()
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}; the file was altered") from None
    extras = _checked_extra(extra, users, items, path, sorted_lists=version >= 5)
    try:
        _check_agreement(model, config, preset, scale, users, items, extras, version)
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}; the file was altered or mixed with another model") from None
    if version >= 8:  # after the fields' own checks, which say more precisely what disagrees
        _check_serving(model, meta.get("serving"), served, path)
    model.to(dev).eval()
    return CollabModel(model=model, users=users, items=items, scale=scale, preset=preset,
                       columns=meta.get("columns", {}), global_mean=global_mean,
                       item_info=table_from_json(meta.get("item_info")), trained=True,
                       implicit=meta.get("implicit") is True,
                       fold_noise=None if fold_noise is None else float(fold_noise),
                       fold_lists=None if fold_lists is None else float(fold_lists), **extras)


_V1_HYBRID = {"i_weight.weight": "i_cf_weight.weight", "i_bias.weight": "i_cf_bias.weight"}
_V3_HYBRID = {"u_weight.weight": "u_cf_weight.weight", "u_bias.weight": "u_cf_bias.weight",
              "f_weight.weight": "i_f_weight.weight", "f_bias.weight": "i_f_bias.weight", "feat_idx": "i_feat_idx",
              "feat_w": "i_feat_w"}


def _old_hybrid(tensors: dict[str, torch.Tensor], version: int, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A hybrid model saved before format 4 (item features only) in today's layout: its users get no
    features (zero weights), every user row but the unknown one counts as trained."""
    renamed = {_V1_HYBRID.get(k, k): v for k, v in tensors.items()} if version == 1 else dict(tensors)
    renamed = {_V3_HYBRID.get(k, k): v for k, v in renamed.items()}
    n_users, k = int(config["n_users"]), int(config["n_factors"])
    users = renamed.get("u_cf_weight.weight")  # the sizes the header claims, checked before anything is allocated
    if users is None or tuple(users.shape) != (n_users, k):
        raise ValueError(f"the header claims {n_users} users x {k} factors but the user table is "
                         f"{'missing' if users is None else tuple(users.shape)}")
    trained = torch.ones(n_users, dtype=torch.bool)
    trained[0] = False
    return renamed | {"u_f_weight.weight": torch.zeros(1, k), "u_f_bias.weight": torch.zeros(1, 1),
                      "u_feat_idx": torch.zeros(n_users, 1, dtype=torch.int64), "u_feat_w": torch.zeros(n_users, 1),
                      "trained_users": trained}


def _vocab(meta: dict[str, Any], side: str, tensors: dict[str, torch.Tensor]) -> Vocab:
    """A vocabulary from the file: tensors (format 3) or a JSON list (formats 1 and 2)."""
    spec = meta[side]
    if isinstance(spec, list):
        return Vocab.from_list(spec)
    if not isinstance(spec, dict):
        raise ValueError(f"the {side} vocabulary is neither a list nor a tensor description")
    prefix = f"{_KEY}.{side}."
    arrays = {k[len(prefix):]: tensors.pop(k).numpy() for k in list(tensors) if k.startswith(prefix)}
    return Vocab.from_arrays(str(spec.get("kind")), arrays)


def _model_for(config: dict[str, Any], given: torch.nn.Module | None, path: Path, *,
               probe: bool = False) -> torch.nn.Module:
    """The module to load the weights into: built from the config, or the caller's for a custom kind
    (``probe``: only its shapes are needed, so the caller's module is returned as it is)."""
    if probe and given is not None and config["kind"] == "custom":
        return given
    if config["kind"] == "custom":
        if given is None:
            raise ModelFileError(f"{path} holds the weights of your own module {config.get('class')!r}; pass a "
                                 "fresh instance with the same sizes: cflearn.load(path, model=YourModule(...))")
        return given
    if given is not None:
        raise ModelFileError(f"{path} holds a cflearn {config['kind']!r} model, built from the file; leave model= out")
    return build_model(config)


def _check_fields(meta: dict[str, Any]) -> None:
    """The header's settings have the types the rest of cflearn relies on (``ValueError`` naming the field)."""
    kinds = {"preset": dict, "columns": dict, "implicit": bool, "item_info": dict}
    for name, kind in kinds.items():
        value = meta.get(name)
        if value is not None and not isinstance(value, kind):
            raise ValueError(f"the field {name!r} must be a JSON {kind.__name__.replace('dict', 'object')}, got "
                             f"{type(value).__name__}")
    for key, col in (meta.get("columns") or {}).items():
        if col is not None and not isinstance(col, str):
            raise ValueError(f"column {key!r} must be a name, got {col!r}")
    info = meta.get("item_info")
    if info is not None:
        index, columns = info.get("index"), info.get("columns")
        name = info.get("index_name")
        if name is not None and not isinstance(name, (str, int)):
            raise ValueError(f"the item table's index name must be text, got {name!r}")
        if not isinstance(index, list) or not isinstance(columns, dict) or not all(
                isinstance(v, list) and len(v) == len(index) for v in columns.values()):
            raise ValueError("the field 'item_info' must hold an index list and columns of the same length")


def _checked_extra(extra: dict[str, torch.Tensor | None], users: Vocab, items: Vocab, path: Path, *,
                   sorted_lists: bool = True) -> dict:
    """The seen-item lists and item counts, checked against the vocabularies: the offsets start at 0 and
    never decrease, the items are real rows (1 .. n_items - 1), the counts are not negative."""
    indptr, seen, counts = extra["seen_indptr"], extra["seen_items"], extra["item_counts"]
    if indptr is None:
        return {}
    ok = (indptr.ndim == 1 and len(indptr) == len(users) + 1 and counts is not None and len(counts) == len(items)
          and seen is not None and int(indptr[-1]) == len(seen) and (len(seen) == 0 or int(seen.max()) < len(items)))
    ok = ok and seen is not None and counts is not None and int(indptr[0]) == 0 and bool(
        (indptr[1:] >= indptr[:-1]).all()) and (len(seen) == 0 or int(seen.min()) >= 1) and bool((counts >= 0).all())
    if ok and seen is not None and len(seen) > 1:
        rising = seen[1:].long() > seen[:-1].long()
        starts = indptr[1:-1].long()
        rising[starts[(starts > 0) & (starts < len(seen))] - 1] = True  # a new user's list may start lower
        if not bool(rising.all()):
            if sorted_lists:  # format 5 writes each user's items in order: anything else was altered
                ok = False
            else:  # an older file: put each user's items in order
                key = torch.repeat_interleave(torch.arange(len(users)), indptr[1:] - indptr[:-1]) * len(items)
                seen = seen[torch.argsort(key + seen.long(), stable=True)]
    if not ok or seen is None or counts is None:
        raise ModelFileError(f"{path}: the seen-item lists do not match the vocabularies (each user's items, in "
                             "order, every one a known item); the file was altered")
    out = {"seen_indptr": indptr.long(), "seen_items": seen.int(), "item_counts": counts.long()}
    for name, vocab in (("user_means", users), ("item_means", items)):
        means = extra.get(name)
        if means is not None:
            if means.ndim != 1 or len(means) != len(vocab):
                raise ModelFileError(f"{path}: {name} do not match the vocabularies; the file was altered")
            out[name] = means.float()
    return out


def _check_agreement(model: torch.nn.Module, config: dict[str, Any], preset: Preset,
                     scale: tuple[float, float], users: Vocab, items: Vocab, extras: dict[str, torch.Tensor],
                     version: int) -> None:
    """The header's fields against each other and against the tensors (``ValueError`` saying which):
    every head's user and item counts against the vocabularies, the rating head's y_range against the
    scale and the padding rule (or the range its caller chose), the item counts against the seen
    lists, and each ranking history inside its user's seen items, in order. What a checksum cannot
    tell (a forger can recompute it), these catch when the edit is not made consistently everywhere."""
    for sub in _configs(config):
        for key, vocab in (("n_users", users), ("n_items", items)):
            if key in sub and sub[key] != len(vocab):
                raise ValueError(f"the {sub.get('kind')!r} head's {key} ({sub[key]}) does not match the "
                                 f"{key[2:-1]} vocabulary ({len(vocab)} rows)")
        y_range = sub.get("y_range")
        if y_range is not None:
            _check_y_range(list(y_range), preset, scale, version)
    seen, indptr, counts = (extras.get(k) for k in ("seen_items", "seen_indptr", "item_counts"))
    if seen is None or indptr is None:
        return
    if counts is not None and not torch.equal(counts, torch.bincount(seen.long(), minlength=len(counts))):
        raise ValueError("the item counts do not match the seen lists")
    seen_keys = torch.repeat_interleave(torch.arange(len(indptr) - 1), indptr[1:] - indptr[:-1]) * len(items) + seen
    for module in model.modules():
        buffers = dict(module.named_buffers(recurse=False))
        if "hist_indptr" not in buffers or "hist_items" not in buffers:
            continue
        hist, offsets = buffers["hist_items"].long(), buffers["hist_indptr"].long()
        if len(offsets) != len(indptr):
            raise ValueError("the ranking histories do not have one list per user")
        keys = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets[1:] - offsets[:-1]) * len(items) + hist
        if len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all()):
            raise ValueError("a user's ranking history is not in item order")
        if not bool(torch.isin(keys, seen_keys).all()):
            raise ValueError("a ranking history holds an item its user never had in training")


def _check_serving(model: torch.nn.Module, record: Any, served: dict[str, torch.Tensor], path: Path) -> None:
    """The tables the file holds for NumPy serving are the ones the weights give (a forger who edits one and
    recomputes its checksum is still caught): the same record, the same computed tables to float rounding. A blend
    saved before blends were served by NumPy holds none (``load_served`` hands it to torch)."""
    if record is None and not served and contract(model).kind == "blend":
        return
    want, tables = _serving(model)
    same = record == json.loads(json.dumps(want)) and set(served) == set(tables) and all(
        served[k].shape == tables[k].shape and served[k].dtype == tables[k].dtype
        and torch.allclose(served[k].float(), tables[k].float(), rtol=1e-4, atol=1e-5) for k in tables)
    if not same:
        raise ModelFileError(f"{path}: the tables saved for serving do not match the weights; the file was altered "
                             "or mixed with another model")


def _configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """A model's config and its heads' (a dual model's ``rating`` and ``ranking``)."""
    heads = [v for k, v in config.items() if k in ("rating", "ranking") and isinstance(v, dict)]
    return [config, *heads]


def _check_y_range(y_range: list[Any], preset: Preset, scale: tuple[float, float], version: int) -> None:
    lo, hi = scale
    if len(y_range) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in y_range):
        raise ValueError(f"the y_range {y_range!r} is not two numbers")
    a, b = float(y_range[0]), float(y_range[1])
    if a > lo or b < hi:
        raise ValueError(f"the y_range [{a:g}, {b:g}] does not cover the rating scale [{lo:g}, {hi:g}]")
    given = preset.y_range
    if version >= 6 and given is not None:  # the caller's own range: recorded, so it must be this one
        if [float(v) for v in given] != [a, b]:
            raise ValueError(f"the y_range [{a:g}, {b:g}] is not the one its caller chose ({list(given)!r})")
        return
    want = y_range_for(scale, preset.y_range_rule, preset.y_pad)
    if version >= 6:
        if abs(a - want[0]) > 1e-6 or abs(b - want[1]) > 1e-6:
            raise ValueError(f"the y_range [{a:g}, {b:g}] does not follow from the scale [{lo:g}, {hi:g}] and the "
                             f"padding rule ([{want[0]:g}, {want[1]:g}])")
    elif a < want[0] - max(1.0, hi - lo) or b > want[1] + max(1.0, hi - lo):  # older files: no record of a choice
        raise ValueError(f"the y_range [{a:g}, {b:g}] reaches far beyond the scale [{lo:g}, {hi:g}]")


def _table_to_json(table: pd.DataFrame | None, vocab: Vocab) -> dict[str, Any] | None:
    if table is None:
        return None
    table = table[table.index.isin(vocab.ids)]
    cols = [c for c in table.columns if table[c].dtype.kind in "biufO" or str(table[c].dtype) in ("str", "string")]
    return {"index_name": table.index.name, "index": [_plain(v) for v in table.index],
            "columns": {str(c): [_plain(v) for v in table[c]] for c in cols}}


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and v != v else v

