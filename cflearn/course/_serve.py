"""The kernel's side of checking: runs what the checks ask of a notebook's answers, and only that.

The checks never run in the notebook's process. They send requests (look a name up, call an
answer with these inputs, build a model and run it with these weights, save the learner) that
:class:`Server` answers with values over :mod:`._wire`. A notebook can change this module as it
likes: that changes the values it sends back, which the checks judge against their own reference,
never a verdict.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Callable, MutableMapping
from typing import Any

from ._placeholder import is_placeholder
from ._wire import decode, encode

__all__ = ["Server", "serve", "MIME", "KEEP_MODELS"]

MIME = "text/x-cflearn-check"
"""The display type of a reply in the output of a request's cell."""

KEEP_MODELS = 16
"""How many models a notebook's server keeps for the checks at a time (the oldest goes first)."""


class _Sink(io.TextIOBase):
    """Where an answer's prints go while it is checked (nowhere)."""

    def write(self, s: str) -> int:
        return len(s)


class Server:
    """Answers the checks' requests about the answers in ``namespace`` (a notebook's globals)."""

    def __init__(self, namespace: MutableMapping[str, Any]) -> None:
        self.namespace = namespace
        self.models: dict[int, Any] = {}
        self.made = 0

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One reply: JSON-ready data."""
        op: Callable[[dict[str, Any]], dict[str, Any]] | None = {
            "look": self._look, "call": self._call, "describe": self._describe, "run": self._run,
            "save": self._save}.get(str(request.get("op")))
        if op is None:
            return {"error": f"unknown request {request.get('op')!r}"}
        return op(request)

    def _look(self, r: dict[str, Any]) -> dict[str, Any]:
        name = str(r["name"])
        if name not in self.namespace:
            return {"kind": "missing"}
        value = self.namespace[name]
        if is_placeholder(value):
            return {"kind": "placeholder"}
        if isinstance(value, type) or callable(value):
            return {"kind": "callable", "type": type(value).__name__}
        return {"kind": "value", "value": encode(value)}

    def _call(self, r: dict[str, Any]) -> dict[str, Any]:
        fn = self.namespace.get(str(r["name"]))
        args, kwargs = decode(r["args"]), decode(r["kwargs"])
        try:
            with _quiet(), _seeded():
                out = fn(*args, **kwargs)  # type: ignore[misc]
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001  (SystemExit too: the student's code, not the kernel)
            return _raised(e)
        reply: dict[str, Any] = {"args": encode(list(args)), "kwargs": encode(kwargs)}
        if _is_module(out):
            self.made += 1
            self.models[self.made] = out
            for old in sorted(self.models)[:-KEEP_MODELS]:
                del self.models[old]
            return {**reply, "model": self.made, "type": type(out).__name__}
        return {**reply, "out": encode(out)}

    def _describe(self, r: dict[str, Any]) -> dict[str, Any]:
        model = self.models[int(r["model"])]
        layers = []
        for m in _layers(model):
            bias = getattr(m, "bias", None)
            layers.append({"kind": type(m).__name__, "weight": encode(m.weight),
                           "bias": bias is not None, "in": getattr(m, "in_features", None),
                           "out": getattr(m, "out_features", None)})
        unset = any(is_placeholder(v) for v in vars(model).values())
        known = {id(p) for m in _layers(model) for p in m.parameters()}
        extra = [name for name, p in model.named_parameters() if id(p) not in known]
        return {"unset": unset, "layers": layers, "extra": extra[:20]}

    def _run(self, r: dict[str, Any]) -> dict[str, Any]:
        import torch

        model = self.models[int(r["model"])]
        layers = _layers(model)
        weights = decode(r["weights"])
        users, items, target = decode(r["users"]), decode(r["items"]), decode(r.get("target"))
        widths: list[int] = []
        try:
            with torch.no_grad():
                for index, (w, b) in weights.items():
                    layers[index].weight.copy_(w)
                    if b is not None and layers[index].bias is not None:
                        layers[index].bias.copy_(b)
            for p in model.parameters():
                p.grad = None
            model.train(not r.get("eval"))
            watch = r.get("watch")
            hook = None
            if isinstance(watch, int):
                hook = layers[watch].register_forward_pre_hook(
                    lambda _, a: widths.append(int(a[0].shape[-1])) if a and hasattr(a[0], "shape") else None)
            try:
                with _quiet():
                    out = model(users, items)
            finally:
                if hook is not None:
                    hook.remove()
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001
            return {**_raised(e), "widths": widths}
        grads: list[Any] = [None] * len(layers)
        n = len(users)
        if (target is not None and isinstance(out, torch.Tensor) and out.requires_grad
                and tuple(out.shape) in ((n,), (n, 1))):
            flat = out[:, 0] if out.dim() == 2 else out
            try:
                with _quiet():
                    ((flat.float() - target) ** 2).mean().backward()
                grads = [m.weight.grad for m in layers]
            except Exception:  # noqa: BLE001  (no gradient reaches a table: said by the check)
                pass
        return {"out": encode(out), "widths": widths, "grads": encode(grads)}

    def _save(self, r: dict[str, Any]) -> dict[str, Any]:
        from ..serve._export import save

        learn = self.namespace.get(str(r["name"]))
        if learn is None:
            return {"kind": "missing"}
        try:
            with _quiet():
                save(learn, str(r["path"]))
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001
            return _raised(e)
        return {"saved": True}


def _is_module(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _layers(model: Any) -> list[Any]:
    """The model's embeddings and linear layers, in the order of ``model.modules()``."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Embedding, nn.Linear))]


def _raised(e: BaseException) -> dict[str, Any]:
    return {"raised": [type(e).__name__[:100], str(e)[:1000]]}


@contextlib.contextmanager
def _seeded() -> Any:
    """torch's generator seeded for the call (an answer's random start is the same every check), and
    the notebook's own generator as it was afterwards."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@contextlib.contextmanager
def _quiet() -> Any:
    with warnings.catch_warnings(), contextlib.redirect_stdout(_Sink()), contextlib.redirect_stderr(_Sink()):
        warnings.simplefilter("ignore")
        yield


_servers: dict[int, Server] = {}


def serve(namespace: MutableMapping[str, Any], request: str) -> None:
    """Answer one request (JSON text) about the answers in ``namespace``, as display data of type
    :data:`MIME` in the cell's output (what the grader's checks read)."""
    from IPython.display import display

    server = _servers.setdefault(id(namespace), Server(namespace))
    try:
        reply = server.handle(json.loads(request))
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001  (a request the notebook broke: the check says so)
        reply = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    try:
        text = json.dumps(reply)
    except (TypeError, ValueError) as e:
        text = json.dumps({"error": f"the reply could not be sent ({e})"})
    display({MIME: text}, raw=True)
