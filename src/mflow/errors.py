"""The exceptions mflow raises.

    MflowError
    ├── DecodeError                 a message could not be turned into data
    │   ├── UnknownHtypeError       no handler is registered for its dispatch key
    │   ├── MalformedMessageError   wrong part count, size/shape mismatch, bad fields
    │   │   └── BadHeaderError      frame 0 is not a header any dispatcher understands
    │   └── CompressionError        a compressed blob is corrupt or declares a bad size
    │       └── DecodedSizeError    it would decode to more than the limit allows
    ├── StreamError                 the socket side failed
    │   ├── ConnectError            (also a RuntimeError, as in 1.0) bind/connect failed
    │   ├── StreamTimeoutError      (also a TimeoutError) a send or receive timed out
    │   │   └── SendTimeoutError    (also a zmq.Again, as 1.0 raised) a blocking send timed out
    │   └── StreamClosedError       (also a zmq.ZMQError, as in 1.0) not connected (any more)
    ├── RecordingError              a recording cannot be opened or read (missing, corrupt)
    └── ConfigurationError          (also a ValueError) bad arguments or configuration

pyzmq errors are translated into these in one place, `mflow.stream`; codecs and handlers
raise the decode errors. The 1.0 ``Stream.receive()`` contract still returns ``None`` for a
message that fails to decode; ``strict=True`` streams raise the ``DecodeError`` instead.
"""

from __future__ import annotations

import zmq

__all__ = [
    "MflowError",
    "DecodeError",
    "UnknownHtypeError",
    "MalformedMessageError",
    "BadHeaderError",
    "CompressionError",
    "DecodedSizeError",
    "StreamError",
    "ConnectError",
    "StreamTimeoutError",
    "SendTimeoutError",
    "StreamClosedError",
    "RecordingError",
    "ConfigurationError",
]


class MflowError(Exception):
    """Base class of every exception raised by mflow."""


class DecodeError(MflowError):
    """A received message could not be decoded.

    ``reason`` is the statistics key the failure is counted under.
    """

    reason = "decode_error"


class UnknownHtypeError(DecodeError):
    """No handler is registered for the message's dispatch key (``htype``)."""

    reason = "unknown_htype"


class MalformedMessageError(DecodeError):
    """The message does not follow its format: bad header, part count, sizes or shapes."""

    reason = "malformed"


class BadHeaderError(MalformedMessageError):
    """Frame 0 is not UTF-8 JSON with an ``htype`` (nor another known dialect)."""

    reason = "bad_header"


class CompressionError(DecodeError):
    """A compressed blob is corrupt, truncated or decodes to a size other than declared."""

    reason = "compression_error"


class DecodedSizeError(CompressionError):
    """A blob would decode to more bytes than allowed (per blob, or the message's budget)."""

    reason = "decoded_size"


class StreamError(MflowError):
    """Sending or receiving on the socket failed."""


class ConnectError(StreamError, RuntimeError):
    """Binding or connecting failed (bad address, port in use, ...)."""


class StreamTimeoutError(StreamError, TimeoutError):
    """A blocking send or receive did not complete within the configured timeout."""


# OSError declares strerror str | None, pyzmq's stubs str: both hold a str here.
class SendTimeoutError(StreamTimeoutError, zmq.Again):  # type: ignore[misc]
    """A blocking send timed out (``send_timeout``); 1.0 code catching ``zmq.Again`` (and
    checking ``errno == zmq.EAGAIN``) still works."""

    def __init__(self, message: str = "send timed out") -> None:
        text = f"{zmq.strerror(zmq.EAGAIN)} ({message})"
        super().__init__(text)  # type: ignore[arg-type]  # pyzmq takes a message; stubs: int
        self.errno = zmq.EAGAIN
        self.strerror = text


class StreamClosedError(StreamError, zmq.ZMQError):
    """The stream is not connected, or was disconnected.

    Also a ``zmq.ZMQError`` (``ENOTSOCK``), which is what 1.0 raised then.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)  # type: ignore[arg-type]  # pyzmq takes a message; stubs: int
        self.errno = zmq.ENOTSOCK
        self.strerror = message


class RecordingError(MflowError):
    """A recording cannot be opened or read: missing, not a recording, or corrupt."""


class ConfigurationError(MflowError, ValueError):
    """Invalid arguments or configuration (address, mode, option values)."""
