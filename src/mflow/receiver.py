"""The cursor a handler reads one received message through.

`Stream.receive()` takes a whole multipart message off the socket at once (ZeroMQ delivers
multipart messages atomically) and loads it into the stream's `ReceiveHandler`; the cursor
never touches the socket itself (`mflow.stream` does); the handler
then walks the frames with the 1.0 calls ``next(as_json=...)`` and ``has_more()``. Reading
past the last frame yields ``None`` instead of stealing the next message, and whatever a
handler leaves unread is dropped with the message, so a failed decode can never
desynchronise the stream.

Byte accounting follows 1.0: every frame handed out by `next` (or `rest`) adds its length
to ``statistics.bytes_received``.

Parts are taken off the socket without a copy: as frames of the compiled receive path
(`mflow._fastpath`), or as ``zmq.Frame`` objects, whose ``more`` flag spares a
``getsockopt(RCVMORE)`` call per part. Handlers that build arrays read them through
`rest_buffers`, so payloads are never copied (such arrays are views on the received
frame, writable like any array the caller owns). What `next` and `rest` return
keeps the 1.0 types: ``bytes`` for copying streams (a copy made on request),
memoryviews for ``copy=False`` (writable, as pyzmq makes them).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import zmq

from .jsonparse import parse_json
from .statistics import Statistics

__all__ = ["ReceiveHandler"]

_NOT_PARSED = object()


class ReceiveHandler:
    """Reads the frames of the current message for a handler (the 1.0 ``receiver``).

    Outside `Stream.receive()` the 1.0 frame-by-frame use still works: `header` and
    `next` then read the next message when the current one is exhausted, through
    ``take_message`` (the stream's; made for ``socket`` when not given).
    """

    def __init__(
        self,
        socket: zmq.Socket | None,
        copy: bool = True,
        statistics: Statistics | None = None,
        *,
        take_message: Callable[[int], Sequence[Any]] | None = None,
    ) -> None:
        self.socket = socket
        if take_message is None and socket is not None:
            from .stream import message_taker  # the stream module owns every socket call

            take_message = message_taker(socket)
        #: ``take_message(flags)``: the frames of the next whole message (from the stream).
        self._take_message = take_message
        self.statistics = statistics if statistics is not None else Statistics()
        self.raw_header: bytes | None = None
        self.block = True
        self.zmq_copy = copy
        self.zmq_track = not copy
        #: Whether handlers decode compressed payloads (e.g. images) into arrays.
        self.decode = True
        #: Whether a payload that fails to decode fails its message (`mflow.handlers._payload`).
        self.strict = False
        #: Cap on the bytes one message's payloads decode to (None: see `mflow.handlers._payload`).
        self.max_decoded_bytes: int | None = None
        #: Decoded bytes per message the last series header declared (images × their size).
        self.declared_image_bytes: int | None = None
        #: The `mflow.framepool.FramePool` images are decoded into (None: new arrays).
        self.decode_pool: Any = None
        #: While a stream with decode workers runs a handler: where its payload decodings
        #: go to be finished by a worker (`mflow.handlers._payload`); None: decode at once.
        self.deferred_payloads: list[Any] | None = None
        self.frames: Sequence[Any] = ()
        self.position = 0
        self._in_receive = False
        self._header: Any = _NOT_PARSED
        self._frame_objects = False

    def load(
        self, frames: Sequence[Any], header: Any = _NOT_PARSED, raw_header: bytes | None = None
    ) -> None:
        """Make ``frames`` (bytes, or frame objects) the current message.

        ``header`` and ``raw_header`` give frame 0 already parsed.
        """
        self.frames = frames
        self.position = 0
        self.raw_header = raw_header
        self._header = header
        self._frame_objects = bool(frames) and type(frames[0]) is not bytes

    def end_message(self) -> None:
        """Drop the current message, read or not: a receive has taken the next one.

        Also ends a message a 1.0 handler was reading frame by frame, so that the next
        `header` or `next` reads a new one.
        """
        if self.frames:
            self.load(())

    def receive_message(self, flags: int = 0) -> None:
        """Take the next whole message from the stream and load it.

        ``zmq.ZMQError`` (``zmq.Again`` on a timeout) propagates.
        """
        if self._take_message is None:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        self.load(self._take_message(flags))

    def _read_message(self) -> None:
        """Load the next message (frame-by-frame use outside a receive)."""
        self.receive_message(0 if self.block else zmq.NOBLOCK)

    def _exhausted(self) -> bool:
        if self._in_receive:
            return True
        try:
            self._read_message()
        except zmq.ZMQError:
            return True
        return not self.frames

    def header(self) -> Any:
        """Parse frame 0 as UTF-8 JSON (once per message) and keep its bytes in ``raw_header``.

        Raises ``ValueError`` (``json.JSONDecodeError`` / ``UnicodeDecodeError``) for a
        frame that is not UTF-8 JSON. Outside a receive it first reads a new message when
        the current one was already read from, letting ``zmq.ZMQError`` (e.g. the
        timeout ``zmq.Again``) propagate as in 1.0.
        """
        if not self._in_receive and (self.position > 0 or not self.frames):
            self._read_message()
        if self._header is _NOT_PARSED:
            raw = self.frames[0]
            raw = raw if type(raw) is bytes else raw.bytes
            self.raw_header = raw
            self._header = parse_json(raw)
        return self._header

    def parsed_header(self) -> Any:
        """Frame 0 as parsed JSON (parsed now if the handler did not), ``None`` if it is not."""
        if self._header is _NOT_PARSED:
            self._header = None
            if self.frames:
                raw = self.frames[0]
                text = raw if type(raw) is bytes else raw.buffer
                # Every JSON text starts with an ASCII byte: a CBOR or binary frame 0 (a
                # Stream V2 image of megabytes) is not copied and parsed only to fail.
                if text and text[0] < 0x80:
                    try:
                        self._header = parse_json(text)
                    except ValueError:
                        pass
        return self._header

    def has_more(self) -> int:
        """1 if the current message has unread frames, else 0 (an int, as in 1.0)."""
        return 1 if self.position < len(self.frames) else 0

    def next(self, as_json: bool = False) -> Any:
        """The next frame of the message: bytes (copy) or a memoryview (no copy).

        With ``as_json`` the frame is parsed as JSON (frame 0 is parsed only once per
        message). Past the last frame, or on a receive timeout, returns ``None``.
        """
        if self.position >= len(self.frames) and self._exhausted():
            return None
        position = self.position
        frame = self.frames[position]
        self.position = position + 1
        self.statistics.bytes_received += len(frame)
        if self._frame_objects:
            frame = frame.bytes if self.zmq_copy or as_json else frame.buffer
        if position == 0:
            self.raw_header = None
            if as_json:
                if self._header is _NOT_PARSED:
                    self._header = parse_json(frame)
                return self._header
        if as_json:
            return parse_json(frame)
        return frame

    def _take_rest(self) -> Sequence[Any]:
        frames = self.frames[self.position :]
        self.position = len(self.frames)
        self.raw_header = None
        stats = self.statistics
        for frame in frames:
            stats.bytes_received += len(frame)
        return frames

    def rest(self) -> Sequence[Any]:
        """All unread frames at once (counted like `next`), of the types `next` returns."""
        frames = self._take_rest()
        if not self._frame_objects:
            return frames
        if self.zmq_copy:
            return [frame.bytes for frame in frames]
        return [frame.buffer for frame in frames]

    def rest_buffers(self) -> Sequence[Any]:
        """All unread frames at once, never copied, for handlers that make arrays of them.

        Each supports ``len()`` and the buffer protocol (``numpy.frombuffer``,
        ``memoryview``): ``bytes``, or the received frame itself (see `_fastpath.FRAME_TYPES`).
        """
        return self._take_rest()

    def drop_rest(self) -> None:
        """Skip the unread frames of the current message (they are not counted)."""
        self.position = len(self.frames)
        self.raw_header = None

    def flush(self, success: bool = True) -> None:
        """Drop the unread frames of the message and close its accounting (1.0 API).

        ``success`` counts the message as received; otherwise its bytes are discarded
        (1.0 added them to the next message's count).
        """
        self.drop_rest()
        if success:
            self.statistics.message_succeeded(None)
        else:
            self.statistics.bytes_received = 0
