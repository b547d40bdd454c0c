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
"""

from __future__ import annotations

from typing import Any, Callable

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

    __slots__ = ("statistics", "strict", "remaining", "errors")

    def __init__(self, receiver: Any) -> None:
        self.statistics = receiver.statistics
        self.strict = getattr(receiver, "strict", False)
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
        self.statistics.payload_errors[error.reason] += 1
        self.errors[name] = f"{type(error).__name__}: {error}"

    def decode(
        self, name: str, decoder: Callable[..., Any], *args: Any, compressed: bool = True
    ) -> Any:
        """``decoder(*args, max_bytes=<what is left of the budget>)``, or ``None`` if it fails.

        The size of the result of a ``compressed`` payload is taken off the budget (an
        uncompressed one is a view on the received bytes and costs nothing).
        """
        try:
            result = decoder(*args, max_bytes=self.remaining)
        except DecodeError as error:
            self.failed(name, error)
            return None
        if compressed:
            size = getattr(result, "nbytes", None)
            self.remaining -= len(result) if size is None else size
        return result

    def record(self, message: dict) -> dict:
        """``message``, with ``"payload_errors"`` if any payload failed (and, for a failed
        ``"image"``, ``"image_error"``, the key dimage messages always had)."""
        if self.errors:
            message["payload_errors"] = self.errors
            if "image" in self.errors:
                message["image_error"] = self.errors["image"]
        return message
