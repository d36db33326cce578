"""The checks' side of the channel to a notebook: its answers as the checks see them.

A check never holds the notebook's objects. It looks an answer up (:meth:`Answers.get`), calls it
with inputs it made (:class:`Remote`), builds a model and runs it with weights it chose
(:class:`Model`), or has the learner saved and loads the file (:meth:`Answers.learner`; loading
never unpickles). Each request goes over a channel: :class:`Local` in a student's own notebook
(the same requests and replies, in process), the grader's kernel channel when grading (the checks
run in the grader's worker, the answers in the sandboxed kernel).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._placeholder import PLACEHOLDER
from ._wire import Iterable, Opaque, WireError, decode, encode

__all__ = ["Channel", "Local", "Answers", "Remote", "Model", "Layer", "Run", "Raised", "ChannelDown", "kind_of",
           "type_name", "LEARNER_LIMIT"]

LEARNER_LIMIT = 500 * 2**20
"""The largest saved learner the checks load (bytes)."""


class Raised(Exception):
    """The answer raised ``kind: message`` in the notebook."""

    def __init__(self, kind: str, message: str, widths: list[int] | None = None) -> None:
        super().__init__(message)
        self.kind, self.widths = kind, widths or []


class ChannelDown(Exception):
    """The checks cannot go on asking the notebook (its kernel died, checking ran out of time...)."""


def kind_of(e: BaseException) -> str:
    """The name of the exception an answer raised (the notebook's, for a :class:`Raised`)."""
    return e.kind if isinstance(e, Raised) else type(e).__name__


class Channel(Protocol):
    """Sends one request to the notebook's :class:`cflearn.course._serve.Server`; its reply."""

    def ask(self, request: dict[str, Any]) -> dict[str, Any]: ...


class Local:
    """The channel in a student's own notebook: the server in this process, each request and reply
    through JSON text as in grading."""

    def __init__(self, namespace: MutableMapping[str, Any]) -> None:
        from ._serve import Server

        self.server = Server(namespace)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = self.server.handle(json.loads(json.dumps(request)))
        return json.loads(json.dumps(reply))  # type: ignore[no-any-return]


def _reply(channel: Channel, request: dict[str, Any]) -> dict[str, Any]:
    reply = channel.ask(request)
    if not isinstance(reply, dict):
        raise ChannelDown("the notebook's reply to the checks could not be read")
    if "error" in reply:
        raise ChannelDown(f"the notebook's kernel could not answer the checks ({str(reply['error'])[:200]})")
    if "raised" in reply:
        raised = reply["raised"]
        if not (isinstance(raised, list) and len(raised) == 2):
            raise ChannelDown("the notebook's reply to the checks could not be read")
        widths = reply.get("widths")
        raise Raised(str(raised[0])[:100], str(raised[1])[:1000],
                     [w for w in widths if type(w) is int] if isinstance(widths, list) else [])
    return reply


def _value(data: Any) -> Any:
    try:
        return decode(data)
    except (WireError, RecursionError, ValueError, TypeError) as e:
        raise ChannelDown(f"the notebook sent the checks something that is not a value ({str(e)[:200]})") from None


class Answers:
    """A notebook's answers, as the checks reach them over ``channel``.

    Args:
        channel: to the notebook's server.
        folder: where the notebook may write a learner for the checks to load (a private temporary
            folder when ``None``).
    """

    def __init__(self, channel: Channel, folder: Path | None = None) -> None:
        self.channel, self.folder = channel, folder

    def get(self, name: str) -> Any:
        """The answer ``name``: the placeholder while it is missing or ``____``, a :class:`Remote`
        for a function or class, else its value."""
        reply = _reply(self.channel, {"op": "look", "name": name})
        kind = reply.get("kind")
        if kind in ("missing", "placeholder"):
            return PLACEHOLDER
        if kind == "callable":
            return Remote(self.channel, name, str(reply.get("type", "function"))[:100])
        if kind == "value":
            return _value(reply.get("value"))
        raise ChannelDown("the notebook's reply to the checks could not be read")

    def learner(self, name: str) -> Any:
        """The notebook's learner ``name``, saved there and loaded here (``None`` when it has none);
        :class:`Raised` when it cannot be saved."""
        from .._errors import CflearnError
        from ..serve._export import load

        own = self.folder is None
        folder = Path(tempfile.mkdtemp(prefix="cflearn-check-")) if own else Path(str(self.folder))
        path = folder / f"learner-{os.urandom(6).hex()}.cflearn"
        try:
            reply = _reply(self.channel, {"op": "save", "name": name, "path": str(path)})
            if reply.get("kind") == "missing":
                return None
            private = Path(tempfile.mkdtemp(prefix="cflearn-check-"))
            try:
                mine = private / "learner.cflearn"
                mine.write_bytes(_read_plain_file(path))  # out of the notebook's folder before it is parsed
                return load(mine)
            except CflearnError as e:
                raise ChannelDown(f"the notebook's saved learner could not be loaded ({str(e)[:200]})") from None
            finally:
                shutil.rmtree(private, ignore_errors=True)
        finally:
            if own:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _read_plain_file(path: Path) -> bytes:
    """The bytes of the regular file at ``path``, never following a link or opening a pipe or a
    device the notebook put there, and at most :data:`LEARNER_LIMIT` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise ChannelDown("the notebook's learner was not saved where the checks asked (or not as a file)") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > LEARNER_LIMIT:
            raise ChannelDown("the notebook's saved learner is not a file the checks read")
        data = f.read(LEARNER_LIMIT + 1)
    if len(data) > LEARNER_LIMIT:
        raise ChannelDown("the notebook's saved learner is not a file the checks read")
    return data


class Remote:
    """An answer that is a function or a class, called in the notebook with inputs sent from here.

    ``last_args`` holds the inputs as they were after the last call (an answer that changed them
    shows it there)."""

    def __init__(self, channel: Channel, name: str, type_name: str) -> None:
        self.channel, self.name, self.type_name = channel, name, type_name
        self.last_args: tuple[Any, ...] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reply = _reply(self.channel, {"op": "call", "name": self.name, "args": encode(list(args)),
                                      "kwargs": encode(dict(kwargs))})
        after = _value(reply.get("args"))
        self.last_args = tuple(after) if isinstance(after, list) and len(after) == len(args) else None
        if "model" in reply:
            if type(reply["model"]) is not int:
                raise ChannelDown("the notebook's reply to the checks could not be read")
            return Model(self.channel, reply["model"], str(reply.get("type", "Module"))[:100])
        return _value(reply.get("out"))

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.name} in the notebook>"


@dataclass(frozen=True, eq=False)
class Layer:
    """One ``nn.Embedding`` or ``nn.Linear`` of a model, as it was built: ``index`` is its place
    among the model's embeddings and linear layers (``model.modules()`` order)."""

    index: int
    kind: str
    weight: Any
    has_bias: bool
    in_features: int | None
    out_features: int | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape)


@dataclass(frozen=True)
class Run:
    """A forward pass: the output, the gradient of the loss on each layer's weight (``None`` where
    none reached it, or no target was given), and the widths the watched layer received."""

    out: Any
    grads: list[Any]
    widths: list[int]


class Model:
    """An ``nn.Module`` an answer built, kept in the notebook; the checks describe and run it."""

    def __init__(self, channel: Channel, ident: int, type_name: str) -> None:
        self.channel, self.ident, self.type_name = channel, ident, type_name
        self._layers: list[Layer] | None = None
        self._unset = False
        self._extra: list[str] = []

    def _describe(self) -> list[Layer]:
        if self._layers is None:
            reply = _reply(self.channel, {"op": "describe", "model": self.ident})
            layers = []
            for k, layer in enumerate(reply.get("layers") or []):
                if not isinstance(layer, dict):
                    raise ChannelDown("the notebook's reply to the checks could not be read")
                weight = _value(layer.get("weight"))
                if not hasattr(weight, "shape"):
                    raise ChannelDown("the notebook's reply to the checks could not be read")
                ins, outs = layer.get("in"), layer.get("out")
                layers.append(Layer(k, str(layer.get("kind"))[:40], weight.detach(), bool(layer.get("bias")),
                                    ins if type(ins) is int else None, outs if type(outs) is int else None))
            extra = reply.get("extra")
            self._layers, self._unset = layers, bool(reply.get("unset"))
            self._extra = [str(e)[:100] for e in extra] if isinstance(extra, list) else []
        return self._layers

    @property
    def extra(self) -> list[str]:
        """The names of parameters outside the model's embeddings and linear layers."""
        self._describe()
        return self._extra

    @property
    def unset(self) -> bool:
        """Whether ``__init__`` left an attribute at ``____``."""
        self._describe()
        return self._unset

    def embeddings(self) -> list[Layer]:
        return [layer for layer in self._describe() if layer.kind == "Embedding"]

    def linears(self) -> list[Layer]:
        return [layer for layer in self._describe() if layer.kind == "Linear"]

    def run(self, weights: dict[int, Any], users: Any, items: Any, *, target: Any = None,
            watch: int | None = None, eval: bool = False) -> Run:
        """Set the layers' weights (``index -> weight`` or ``(weight, bias)``), run forward on the
        batch and, with a ``target``, back-propagate the mean squared error to it.

        Raises:
            Raised: forward raised in the notebook (its ``widths`` say what the watched layer got).
        """
        pairs = {k: (w if isinstance(w, tuple) else (w, None)) for k, w in weights.items()}
        reply = _reply(self.channel, {"op": "run", "model": self.ident, "weights": encode(pairs),
                                      "users": encode(users), "items": encode(items), "target": encode(target),
                                      "watch": watch, "eval": eval})
        grads = _value(reply.get("grads"))
        widths = reply.get("widths")
        n = len(self._describe())
        if not (isinstance(grads, list) and len(grads) == n):
            raise ChannelDown("the notebook's reply to the checks could not be read")
        return Run(_value(reply.get("out")), grads,
                   [w for w in widths if type(w) is int] if isinstance(widths, list) else [])

    def __repr__(self) -> str:
        return f"<{self.type_name} in the notebook>"


def type_name(value: Any) -> str:
    """The name of a value's type, as the notebook had it (an :class:`Opaque`'s own)."""
    return value.type_name if isinstance(value, (Opaque, Iterable, Remote, Model)) else type(value).__name__
