"""A model file's layout, readable without torch: the header's key, the format version, the digests.

:mod:`cflearn.serve._export` writes and reads model files with torch; :mod:`cflearn.serve._served` reads them
with NumPy alone. Both check the same digests, computed here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

__all__ = ["KEY", "FORMAT_VERSION", "HEADER_LIMIT", "EXTRA", "SERVE_PREFIX", "digest", "header_digest"]

KEY = "cflearn"
FORMAT_VERSION = 8  # 8: the tables a saved model scores with ("serving" in the header), so NumPy can answer;
# 7: the preset is the typed record (Preset.to_dict: the caller's y_range as "y_range");
# 6: a digest of the header too, and the y_range a caller chose recorded in the preset;
# 5: each user's seen items sorted (checked on load); 4: hybrid models have user features too;
# 3: vocabularies as tensors; 2: hybrid items' collaborative part is i_cf_weight / i_cf_bias
HEADER_LIMIT = 100_000_000
"""The most JSON a safetensors file's header may hold (bytes): the file format's own limit."""
EXTRA = ("seen_indptr", "seen_items", "item_counts", "user_means", "item_means")  # beside the weights, "cflearn."
SERVE_PREFIX = f"{KEY}.serve."
"""Tables saved for serving that are not weights (a hybrid's or a ranking head's computed tables)."""

_TORCH_NAMES = {"float32": "torch.float32", "float64": "torch.float64", "float16": "torch.float16",
                "int64": "torch.int64", "int32": "torch.int32", "int16": "torch.int16", "int8": "torch.int8",
                "uint8": "torch.uint8", "bool": "torch.bool"}


def digest(array: np.ndarray) -> str:
    """A short SHA-256 of an array's dtype (named as torch names it), shape and bytes: the same for a tensor
    (``tensor.numpy()``) and the array NumPy reads from the file."""
    name = _TORCH_NAMES.get(array.dtype.name)
    if name is None:
        raise ValueError(f"a tensor of type {array.dtype} in a model file")
    h = hashlib.sha256(f"{name}{tuple(array.shape)}".encode())
    if array.size:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:32]


def header_digest(meta: dict[str, Any]) -> str:
    """A SHA-256 of every header field but this digest, in a canonical JSON form."""
    body = {k: v for k, v in meta.items() if k != "header_digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
