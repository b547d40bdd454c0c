"""The one policy for the payloads of a good message: decoded within a budget, failures said.

A handler that decodes payloads (an image, a bsread channel, a Stream V2 blob) does it
through a `PayloadDecoding` made for the message. A payload that fails to decode does not
fail the message: the message is delivered with what did decode, the failed payload is
``None`` and ``message["payload_errors"]`` maps its name to the error (``"Type: text"``), and
the failure is counted in ``statistics.payload_errors`` under the error's reason. A strict
stream raises the error instead (the message is then skipped, and counted as such).

The bytes decompressed for one message are capped: by the stream's ``max_decoded_bytes``, else
by the image size the last series header declared (`declare_image_bytes`), else by
`mflow.codecs.MAX_DECODED_BYTES`. A payload that would go over the budget is refused
unread with a `DecodedSizeError` (reason ``"decoded_size"``).

Images go into the stream's `mflow.framepool.FramePool` when it has one (``pooled``
payloads: the decoder is given ``allocate``, see `PayloadDecoding.allocate`).

A stream with decode workers defers the work: the handler runs as usual, but payloads it
hands to `PayloadDecoding.decode_into` are only noted (their place holds ``None``); a worker
then runs `PayloadDecoding.finish`, and the stream counts the failures (`count`) when it
delivers the message, in order.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import codecs
from ..errors import DecodeError

__all__ = ["PayloadDecoding", "declare_image_bytes"]


def declare_image_bytes(receiver: Any, x: Any, y: Any, bits: Any, images: Any = 1) -> None:
    """Remember the decoded bytes per message a series header declares: ``images`` images of
    ``x`` × ``y`` pixels of ``bits`` bits (ignored unless all are positive integers)."""
    if all(type(n) is int and n > 0 for n in (x, y, bits, images)):
        itemsize = next((size for size in (1, 2, 4) if bits <= 8 * size), 8)
        receiver.declared_image_bytes = min(x * y * itemsize * images, codecs.MAX_DECODED_BYTES)


class PayloadDecoding:
    """Decodes the payloads of one message from ``receiver`` (see the module docstring)."""

    __slots__ = (
        "statistics",
        "strict",
        "remaining",
        "errors",
        "pool",
        "reasons",
        "deferred",
        "_message",
    )

    def __init__(self, receiver: Any) -> None:
        self.statistics = receiver.statistics
        self.strict = getattr(receiver, "strict", False)
        #: The stream's frame pool, or ``None``.
        self.pool = getattr(receiver, "decode_pool", None)
        #: Reasons of the failures not yet counted (a deferred decoding counts them later).
        self.reasons: list[str] = []
        waiting = getattr(receiver, "deferred_payloads", None)
        #: The payloads left for a decode worker, ``None`` when decoding at once.
        self.deferred: list[tuple] | None = None
        if waiting is not None:
            self.deferred = []
            waiting.append(self)
        self._message: dict | None = None
        limit = getattr(receiver, "max_decoded_bytes", None)
        if limit is None:
            limit = getattr(receiver, "declared_image_bytes", None) or codecs.MAX_DECODED_BYTES
        #: Bytes the rest of the message may still decode to.
        self.remaining: int = limit
        #: Payload name → ``"ErrorType: text"`` of the payloads that failed so far.
        self.errors: dict[str, str] = {}

    def failed(self, name: str, error: DecodeError) -> None:
        """Apply the policy to a payload ``name`` that failed with ``error``."""
        if self.strict:
            raise error
        if self.deferred is None:
            self.statistics.payload_errors[error.reason] += 1
        else:
            self.reasons.append(error.reason)
        self.errors[name] = f"{type(error).__name__}: {error}"

    def allocate(self, dtype: Any, shape: tuple[int, ...]) -> np.ndarray | None:
        """An output array for a decoder from the frame pool; ``None`` (the decoder makes its
        own) without a pool or for a result over the budget (the decoder refuses it)."""
        if self.pool is None:
            return None
        dt = np.dtype(dtype)
        if math.prod(shape) * dt.itemsize > self.remaining:
            return None
        return self.pool.acquire(dt, shape)

    def decode(
        self,
        name: str,
        decoder: Callable[..., Any],
        *args: Any,
        compressed: bool = True,
        pooled: bool = False,
    ) -> Any:
        """``decoder(*args, max_bytes=<what is left of the budget>)``, or ``None`` if it fails.

        The size of the result of a ``compressed`` payload is taken off the budget (an
        uncompressed one is a view on the received bytes and costs nothing). A ``pooled``
        decoder is also given ``allocate=`` `allocate`.
        """
        try:
            if pooled:
                result = decoder(*args, max_bytes=self.remaining, allocate=self.allocate)
            else:
                result = decoder(*args, max_bytes=self.remaining)
        except DecodeError as error:
            self.failed(name, error)
            return None
        if compressed:
            size = getattr(result, "nbytes", None)
            self.remaining -= len(result) if size is None else size
        return result

    def decode_into(
        self,
        container: Any,
        key: Any,
        name: str,
        decoder: Callable[..., Any],
        *args: Any,
        compressed: bool = True,
        pooled: bool = False,
    ) -> None:
        """``container[key] =`` `decode` ``(name, decoder, *args, ...)``: now, or, when
        deferred, by `finish` (``None`` until then)."""
        if self.deferred is None:
            container[key] = self.decode(name, decoder, *args, compressed=compressed, pooled=pooled)
        else:
            container[key] = None
            self.deferred.append((container, key, name, decoder, args, compressed, pooled))

    def finish(self) -> None:
        """Decode the deferred payloads (in a decode worker) and record their failures in
        the message `record` was given."""
        jobs, self.deferred = self.deferred or [], []
        for container, key, name, decoder, args, compressed, pooled in jobs:
            container[key] = self.decode(name, decoder, *args, compressed=compressed, pooled=pooled)
        if self._message is not None:
            self._record(self._message)

    def count(self) -> None:
        """Count the failures of a deferred decoding (when its message is delivered)."""
        payload_errors = self.statistics.payload_errors
        for reason in self.reasons:
            payload_errors[reason] += 1
        self.reasons.clear()

    def record(self, message: dict) -> dict:
        """``message``, with ``"payload_errors"`` if any payload failed (and, for a failed
        ``"image"``, ``"image_error"``, the key dimage messages always had); when deferred,
        `finish` adds them."""
        if self.deferred:  # an empty list: nothing was deferred, the errors are known now
            self._message = message
            return message
        return self._record(message)

    def _record(self, message: dict) -> dict:
        if self.errors:
            message["payload_errors"] = self.errors
            if "image" in self.errors:
                message["image_error"] = self.errors["image"]
        return message
