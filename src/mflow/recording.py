"""Recordings of multipart messages: the single-file format and the 1.0 folder layout.

A message is a list of parts, each a bytes-like object (``bytes``, ``bytearray``,
``memoryview``, ``zmq.Frame``, a contiguous numpy array...); parts may be empty. Both
formats keep every part's bytes and the part boundaries; the single-file format also keeps
each message's receive time.

Single-file format (version 1)
------------------------------
Append-only. All integers are unsigned little-endian, ``receive_time`` is an IEEE 754
double (seconds since the epoch). The file starts with a 12-byte file header::

    offset  size  field
         0     8  magic      b"\\x89MFLOW\\r\\n"
         8     4  version    1

followed by one record per message, back to back, until the end of the file::

    offset      size  field
         0         4  marker        b"MREC"
         4         4  n_parts       number of parts (N)
         8         8  receive_time  double
        16         4  lengths_crc   crc32 of the length table (bytes 24 to 24 + 8N - 1)
        20         4  header_crc    crc32 of bytes 0 to 19 of this record
        24        8N  lengths       N × u64, the size of each part in bytes
    24 + 8N   Σ len  payload       the parts' bytes, concatenated, without padding

crc32 is the CRC-32 of zlib, zip and PNG. Only the record header is checksummed
(payloads are not, for speed). ``header_crc`` makes
``n_parts`` trustworthy before the length table is read, so a damaged count can never be
mistaken for a record that runs past the end of the file. A writer killed mid-record
(``kill -9``, a full disk) leaves a prefix of that record at the end of the file; readers
recognise it as a *truncated tail* because the record's verified sizes run past the end of
the file, and stop cleanly before it. A record header that is complete but fails its
checks is corruption.

Folder format (the layout of 1.0's ``m_dump``)
----------------------------------------------
One file per part, ``<message>_<part>.raw`` (both 0-based, zero-padded to 6 and 3 digits
and longer when the number needs it: ``1000000_000.raw``, ``000001_1000.raw``), holding the
part's raw bytes; an empty part is an empty file. Receive times are not stored. Readers
consider only regular files named ``<digits>_<digits>.raw``, group them by the message
number and order messages and parts numerically. Our writer writes part 0 of a message last
(under a temporary name, then renamed), so a message without part 0 is one a writer was
killed in the middle of.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Literal, NamedTuple, TypeVar, Union

from .errors import ConfigurationError, RecordingError

__all__ = [
    "RecordingError",
    "RecordedMessage",
    "RecordingWriter",
    "RecordingReader",
    "FolderWriter",
    "FolderReader",
    "open_recording",
    "MAGIC",
    "VERSION",
]

MAGIC = b"\x89MFLOW\r\n"
VERSION = 1

_FILE_HEADER = struct.Struct("<8sI")
_RECORD_START = struct.Struct("<4sIdI")  # marker, n_parts, receive_time, lengths_crc
_CRC = struct.Struct("<I")
_RECORD = struct.Struct("<4sIdII")  # the above + header_crc
_MARKER = b"MREC"
_LENGTH_SIZE = 8

_PART_NAME = re.compile(r"([0-9]+)_([0-9]+)\.raw")
_PARTIAL_SUFFIX = ".partial"

PathLike = Union[str, "os.PathLike[str]"]
OnCorruption = Literal["raise", "stop"]


class RecordedMessage(NamedTuple):
    """One message read back from a recording.

    ``parts`` are ``bytes``; ``receive_time`` is seconds since the epoch, or ``None`` when
    the format does not store it (folder format); ``index`` is the message's number in the
    recording (0-based).
    """

    parts: list[bytes]
    receive_time: float | None
    index: int


def _views(parts: Iterable[object]) -> list[memoryview]:
    """The parts as byte-addressed memoryviews, checked before anything is written."""
    if isinstance(parts, (bytes, bytearray, memoryview)):
        raise TypeError("parts must be a list of bytes-like objects, not a single buffer")
    views = []
    for index, part in enumerate(parts):
        view = memoryview(part)  # type: ignore[arg-type]
        if not view.c_contiguous:
            raise ConfigurationError(f"part {index} is not a C-contiguous buffer")
        views.append(view if view.format == "B" and view.ndim == 1 else view.cast("B"))
    if not views:
        raise ConfigurationError("a message needs at least one part")
    return views


# ---------------------------------------------------------------------------- writers

_W = TypeVar("_W", bound="_Writer")


class _Writer(ABC):
    """What both writers share: counters, the failure latch and the context-manager protocol.

    Once a write failed part-way (a full disk, an interrupt), the recording ends in a
    partial message; appending more would bury it in the middle, where it is corruption. So
    after a failure the error propagates and every further `write` / `flush` raises
    `RecordingError`; `close` still releases the files.
    """

    def __init__(self) -> None:
        self.messages_written = 0
        """Number of messages written so far."""
        self.bytes_written = 0
        """Total size of the parts written so far (payload bytes, headers not counted)."""
        self._closed = False
        self._failure: BaseException | None = None

    @abstractmethod
    def write(self, parts: Iterable[object], receive_time: float | None = None) -> None:
        """Append one message (a list of bytes-like parts)."""

    @abstractmethod
    def flush(self) -> None:
        """Hand every buffered message to the OS."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release the recording. Idempotent."""

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def _guarded(self, operation: Callable[..., object], *args: object) -> None:
        try:
            operation(*args)
        except BaseException as error:
            self._failure = error
            raise

    def _check_writable(self) -> None:
        if self._closed:
            raise RecordingError("the recording writer is closed")
        if self._failure is not None:
            raise RecordingError(
                f"the recording writer failed earlier ({self._failure!r}); "
                "it accepts no further writes"
            ) from self._failure

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecordingWriter(_Writer):
    """Appends messages to a single-file recording (see the module docstring for the layout).

    ``target`` is a path, or a binary file object opened for writing (e.g.
    ``sys.stdout.buffer``), which is flushed but not closed by `close`. An existing file is
    refused unless ``overwrite`` is true.

    Writes are buffered (``buffer_size`` bytes); large parts bypass the buffer and go to the
    OS without being copied. A message reaches the file when the buffer fills, on `flush`
    and on `close`: a process killed with ``kill -9`` loses at most what was still
    buffered, and every message that reached the file stays readable. With ``sync=True``
    every `write` also flushes and calls ``os.fsync``, so a message survives a power loss
    once `write` returned (at a large cost in throughput).

    If writing fails (e.g. ``OSError`` ENOSPC on a full disk), the error propagates and the
    writer accepts no further writes: the file ends in a truncated record, which readers
    skip, and every message that reached the file before it stays readable.
    """

    def __init__(
        self,
        target: PathLike | IO[bytes],
        *,
        overwrite: bool = False,
        sync: bool = False,
        buffer_size: int = 1 << 16,
    ) -> None:
        super().__init__()
        if buffer_size <= 0:
            raise ConfigurationError(f"buffer_size must be positive, not {buffer_size}")
        self._sync = sync
        self._file: IO[bytes]
        if isinstance(target, (str, os.PathLike)):
            try:
                self._file = open(target, "wb" if overwrite else "xb", buffering=buffer_size)
            except FileExistsError as error:
                raise RecordingError(
                    f"'{os.fspath(target)}' already exists; pass overwrite=True to replace it"
                ) from error
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        # The file header goes out at once so that even an empty recording is recognisable.
        try:
            self._guarded(self._file.write, _FILE_HEADER.pack(MAGIC, VERSION))
            self._guarded(self._push)
        except BaseException:
            self.close()
            raise

    def write(self, parts: Iterable[object], receive_time: float | None = None) -> None:
        """Append one message; ``receive_time`` defaults to now (``time.time()``).

        An empty message or a part that is not a C-contiguous buffer raises
        `ConfigurationError` (``TypeError`` for a non-buffer) before anything is written.
        """
        self._check_writable()
        views = _views(parts)
        lengths = [view.nbytes for view in views]
        table = struct.pack(f"<{len(lengths)}Q", *lengths)
        start = _RECORD_START.pack(
            _MARKER,
            len(views),
            time.time() if receive_time is None else receive_time,
            zlib.crc32(table),
        )
        self._guarded(self._write_record, start + _CRC.pack(zlib.crc32(start)) + table, views)
        self.messages_written += 1
        self.bytes_written += sum(lengths)

    def _write_record(self, header: bytes, views: list[memoryview]) -> None:
        write = self._file.write
        write(header)
        for view in views:
            write(view)
        if self._sync:
            self._push()

    def flush(self) -> None:
        """Hand every buffered message to the OS (and to the disk with ``sync=True``)."""
        self._check_writable()
        self._guarded(self._push)

    def close(self) -> None:
        """Flush and close (a file object passed in is flushed, not closed). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._failure is None:
                self._guarded(self._push)
        finally:
            if self._owns_file:
                self._close_file()

    def _close_file(self) -> None:
        if self._failure is None:
            self._file.close()
        else:
            # The failure was raised already; the buffered rest of the broken record may
            # fail to write again, and that must not mask it.
            with contextlib.suppress(OSError):
                self._file.close()

    def _push(self) -> None:
        self._file.flush()
        if self._sync:
            os.fsync(self._file.fileno())


class FolderWriter(_Writer):
    """Writes messages in the 1.0 folder layout: one ``<message>_<part>.raw`` file per part.

    The folder is created if needed (like ``os.makedirs``). A folder that already holds
    part files is refused unless ``overwrite`` is true, which deletes those files first
    (stale parts would otherwise join the new messages). Receive times are not stored.
    Nothing is buffered: a message is in the folder when `write` returns.
    """

    def __init__(self, path: PathLike, *, overwrite: bool = False) -> None:
        super().__init__()
        self._path = os.fspath(path)
        os.makedirs(self._path, exist_ok=True)
        existing = [
            name
            for parts in _scan_folder(self._path).values()
            for names in parts.values()
            for name in names
        ]
        if existing and not overwrite:
            raise RecordingError(
                f"folder '{self._path}' already holds a recording ({len(existing)} part "
                "files); pass overwrite=True to replace it"
            )
        for name in existing:
            os.remove(name)

    def write(self, parts: Iterable[object], receive_time: float | None = None) -> None:
        """Write one message as one file per part; ``receive_time`` is ignored (not stored).

        Part 0 is written last, under a temporary name that is then renamed, so a message
        interrupted by a crash is recognisable: it lacks part 0.
        """
        self._check_writable()
        views = _views(parts)
        self._guarded(self._write_message, self.messages_written, views)
        self.messages_written += 1
        self.bytes_written += sum(view.nbytes for view in views)

    def _write_message(self, index: int, views: list[memoryview]) -> None:
        for part in range(1, len(views)):
            self._write_file(_part_file_name(index, part), views[part])
        first = _part_file_name(index, 0)
        self._write_file(first + _PARTIAL_SUFFIX, views[0])
        os.replace(
            os.path.join(self._path, first + _PARTIAL_SUFFIX), os.path.join(self._path, first)
        )

    def _write_file(self, name: str, view: memoryview) -> None:
        with open(os.path.join(self._path, name), "wb") as file:
            file.write(view)

    def flush(self) -> None:
        """Nothing to do: `write` writes every part to its file."""
        self._check_writable()

    def close(self) -> None:
        """Refuse further writes. Idempotent."""
        self._closed = True


def _part_file_name(message: int, part: int) -> str:
    return f"{message:06d}_{part:03d}.raw"


# ---------------------------------------------------------------------------- readers

_R = TypeVar("_R", bound="_Reader")


class _Reader(ABC):
    """What both readers share: the truncation / corruption report and context management.

    Iterating yields `RecordedMessage` objects from the first message on; every iteration
    starts afresh and resets ``truncated`` and ``corruption``.
    """

    def __init__(self, on_corruption: OnCorruption) -> None:
        if on_corruption not in ("raise", "stop"):
            raise ConfigurationError(
                f"on_corruption must be 'raise' or 'stop', not {on_corruption!r}"
            )
        self._stop_at_corruption = on_corruption == "stop"
        self.truncated = False
        """True if the last iteration ended at an incomplete trailing message (its writer
        was interrupted); every message before it was yielded."""
        self.corruption: RecordingError | None = None
        """With ``on_corruption="stop"``: the damage the last iteration stopped at."""

    def __iter__(self) -> Iterator[RecordedMessage]:
        self.truncated = False
        self.corruption = None
        return self._messages()

    @abstractmethod
    def _messages(self) -> Iterator[RecordedMessage]: ...

    def _corrupt(self, description: str) -> None:
        """Raise, or with ``on_corruption="stop"`` note, the damage iteration stops at."""
        error = RecordingError(description)
        if not self._stop_at_corruption:
            raise error
        self.corruption = error

    def close(self) -> None:
        """Release the recording. Idempotent."""

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecordingReader(_Reader):
    """Reads a single-file recording, yielding `RecordedMessage` objects in order.

    A truncated trailing record (its writer was killed, or the disk filled up) ends the
    iteration cleanly and sets ``truncated``. A damaged record header raises
    `RecordingError`, or with ``on_corruption="stop"`` ends the iteration there and sets
    ``corruption``. Payloads are not checksummed, so damage inside a payload goes unnoticed
    (but cannot spread: the next record is found through the verified lengths). An
    iteration reads the part of the file that existed when it began.

    Parts are ``bytes`` rather than views of a memory map: they stay valid after the reader
    is closed, and a file that shrinks while it is read gives a truncated tail instead of a
    ``SIGBUS`` crash; one copy per part costs little next to sending it.
    """

    def __init__(self, path: PathLike, *, on_corruption: OnCorruption = "raise") -> None:
        super().__init__(on_corruption)
        self._path = os.fspath(path)
        try:
            self._file = open(self._path, "rb", buffering=1 << 16)
        except OSError as error:
            raise RecordingError(
                f"cannot open recording '{self._path}': {error.strerror}"
            ) from error
        try:
            self._check_file_header(self._file.read(_FILE_HEADER.size))
        except BaseException:
            self._file.close()
            raise

    def _check_file_header(self, data: bytes) -> None:
        if len(data) < _FILE_HEADER.size or not data.startswith(MAGIC):
            raise RecordingError(f"'{self._path}' is not an mflow recording (no file header)")
        _, version = _FILE_HEADER.unpack(data)
        if version != VERSION:
            raise RecordingError(
                f"'{self._path}' is an mflow recording of version {version}; "
                f"this mflow reads version {VERSION}"
            )

    def close(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()

    def _messages(self) -> Iterator[RecordedMessage]:
        file = self._file
        end = os.fstat(file.fileno()).st_size
        position = _FILE_HEADER.size
        index = 0
        while position < end:
            # Another iteration may have moved the shared file position.
            file.seek(position)
            fixed = file.read(_RECORD.size)
            # A truncated tail is a prefix of a record, so it starts like one too.
            if fixed[: len(_MARKER)] != _MARKER[: len(fixed)]:
                self._corrupt(self._damage(index, position, "does not start with b'MREC'"))
                return
            if len(fixed) < _RECORD.size:
                self.truncated = True
                return
            _, n_parts, receive_time, lengths_crc, header_crc = _RECORD.unpack(fixed)
            if zlib.crc32(fixed[: _RECORD_START.size]) != header_crc:
                self._corrupt(self._damage(index, position, "has a damaged header"))
                return
            table_size = n_parts * _LENGTH_SIZE
            payload_start = position + _RECORD.size + table_size
            if payload_start > end:
                self.truncated = True
                return
            table = file.read(table_size)
            if len(table) < table_size:  # the file shrank while being read
                self.truncated = True
                return
            if zlib.crc32(table) != lengths_crc:
                self._corrupt(self._damage(index, position, "has damaged part lengths"))
                return
            lengths = struct.unpack(f"<{n_parts}Q", table)
            payload_size = sum(lengths)
            if payload_start + payload_size > end:
                self.truncated = True
                return
            parts = [file.read(length) for length in lengths]
            if sum(map(len, parts)) < payload_size:  # the file shrank while being read
                self.truncated = True
                return
            yield RecordedMessage(parts, receive_time, index)
            position = payload_start + payload_size
            index += 1

    def _damage(self, index: int, position: int, problem: str) -> str:
        return f"'{self._path}' is corrupt: record {index} at byte {position} {problem}"


class FolderReader(_Reader):
    """Reads a folder recording (the 1.0 layout), yielding `RecordedMessage` objects in order.

    Only regular files named ``<digits>_<digits>.raw`` count; other entries are ignored.
    Messages and parts are ordered by their numbers, not by file name; ``index`` is the
    message number from the file names (1.0 recordings may skip numbers), and
    ``receive_time`` is ``None``. The folder is listed when the reader is created.

    A last message without part 0 was being written when its writer stopped: iteration
    ends before it and sets ``truncated``. A message lacking part 0 elsewhere, with a gap
    in its part numbers, or with two files for one part (``1_0.raw`` and
    ``000001_000.raw``) is corruption: `RecordingError`, or with ``on_corruption="stop"``
    the iteration ends there and sets ``corruption``.
    """

    def __init__(self, path: PathLike, *, on_corruption: OnCorruption = "raise") -> None:
        super().__init__(on_corruption)
        self._path = os.fspath(path)
        if not os.path.exists(self._path):
            raise RecordingError(f"folder '{self._path}' does not exist")
        if not os.path.isdir(self._path):
            raise RecordingError(f"'{self._path}' is not a folder")
        try:
            self._recording = sorted(_scan_folder(self._path).items())
        except OSError as error:
            raise RecordingError(
                f"cannot list folder '{self._path}': {error.strerror}"
            ) from error

    def _messages(self) -> Iterator[RecordedMessage]:
        last = len(self._recording) - 1
        for position, (number, files) in enumerate(self._recording):
            if 0 not in files and position == last:
                self.truncated = True
                return
            problem = _message_problem(files)
            if problem:
                self._corrupt(f"folder '{self._path}' is corrupt: message {number} {problem}")
                return
            parts = [_read_file(names[0]) for _, names in sorted(files.items())]
            yield RecordedMessage(parts, None, number)


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise RecordingError(f"cannot read '{path}': {error.strerror}") from error


def _scan_folder(path: str) -> dict[int, dict[int, list[str]]]:
    """The part files of a folder recording: message number → part number → file paths."""
    messages: dict[int, dict[int, list[str]]] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            match = _PART_NAME.fullmatch(entry.name)
            if match and entry.is_file():
                parts = messages.setdefault(int(match[1]), {})
                parts.setdefault(int(match[2]), []).append(entry.path)
    return messages


def _message_problem(files: dict[int, list[str]]) -> str | None:
    """Why a message's part files do not form a message, or None if they do."""
    for part, names in sorted(files.items()):
        if len(names) > 1:
            shown = ", ".join(sorted(os.path.basename(name) for name in names))
            return f"has several files for part {part}: {shown}"
    numbers = sorted(files)
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        return f"lacks part(s) {', '.join(map(str, missing))}"
    return None


# ---------------------------------------------------------------------------- detection


def open_recording(
    path: PathLike, *, on_corruption: OnCorruption = "raise"
) -> RecordingReader | FolderReader:
    """Open a recording of either format: a folder, or a file starting with `MAGIC`.

    Raises `RecordingError` naming the problem for anything else (missing path, empty
    file, a file of another kind).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return FolderReader(path, on_corruption=on_corruption)
    try:
        with open(path, "rb") as file:
            start = file.read(len(MAGIC))
    except FileNotFoundError as error:
        raise RecordingError(f"recording '{path}' does not exist") from error
    except OSError as error:
        raise RecordingError(f"cannot open recording '{path}': {error.strerror}") from error
    if start != MAGIC:
        problem = "is empty" if not start else "does not start with the mflow recording magic"
        raise RecordingError(f"'{path}' is not an mflow recording: it {problem}")
    return RecordingReader(path, on_corruption=on_corruption)
