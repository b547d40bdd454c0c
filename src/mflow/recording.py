"""Recordings of multipart messages: the single-file format and the 1.0 folder layout.

A message is a list of parts, each a bytes-like object (``bytes``, ``bytearray``,
``memoryview``, ``zmq.Frame``, a contiguous numpy array...); parts may be empty, a message
has at least one. Both formats keep every part's bytes and the part boundaries; the
single-file format also keeps each message's receive time and a checksum of every part.

Single-file format (version 2; version 1 is still read)
-------------------------------------------------------
Append-only. All integers are unsigned little-endian, ``receive_time`` is an IEEE 754
double (seconds since the epoch). The file starts with a 12-byte file header::

    offset  size  field
         0     8  magic      b"\\x89MFLOW\\r\\n"
         8     4  version    2 (1 in files written before part checksums)

followed by one record per message, back to back, until the end of the file::

    offset      size  field
         0         4  marker        b"MREC"
         4         4  n_parts       number of parts (N), at least 1
         8         8  receive_time  double, finite, 0 <= receive_time < 1e11
        16         4  table_crc     crc32 of the part table (the next 16N bytes)
        20         4  header_crc    crc32 of bytes 0 to 19 of this record
        24       16N  part table    per part: u64 size in bytes, u64 XXH3-64 of its bytes
    24 + 16N   Σ size  payload       the parts' bytes, concatenated, without padding

crc32 is the CRC-32 of zlib, zip and PNG; XXH3-64 is xxHash's 64-bit XXH3 with seed 0
(the ``xxhash`` package's ``xxh3_64_intdigest``). ``header_crc`` makes ``n_parts``
trustworthy before the part table is read, so a damaged count can never be mistaken for a
record that runs past the end of the file; the part checksums catch damage inside the
payload. Version 1 differs only in its part table: 8N bytes, the u64 sizes alone (no part
checksums, so damage inside a payload of a version 1 file goes unnoticed).

A writer killed mid-record (``kill -9``, a full disk) leaves a prefix of that record at
the end of the file; readers recognise it as a *truncated tail* because the record's
verified sizes run past the end of the file, and stop cleanly before it. A record that is
complete but fails a check (a CRC, a part checksum, no parts, an impossible receive
time) is corruption: readers yield every message before it and name the record.

Folder format (the layout of 1.0's ``m_dump``)
----------------------------------------------
One file per part, ``<message>_<part>.raw`` (both 0-based, zero-padded to 6 and 3 digits
and longer when the number needs it: ``1000000_000.raw``, ``000001_1000.raw``), holding the
part's raw bytes; an empty part is an empty file. Receive times and checksums are not
stored: the layout has no place for them, and it must stay readable by the 1.0 tools.
Readers consider only entries named ``<digits>_<digits>.raw``, group them by the message
number and order messages and parts numerically. Our writer writes part 0 of a message last
(under a temporary name, then renamed), so a message without part 0 is one a writer was
killed in the middle of.

Links and special files
-----------------------
Neither writers nor readers follow a symbolic link to a recording file or to a part file,
and both refuse anything but a regular file there (a link, a FIFO, a device): a link
planted in a dump folder can neither redirect what is written nor smuggle another file's
bytes into a replay. Part files are created exclusively (``O_EXCL``), never reused. A
folder named as the recording itself may be a link.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Literal, NamedTuple, TypeVar, Union

import xxhash

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
    "READABLE_VERSIONS",
]

MAGIC = b"\x89MFLOW\r\n"
VERSION = 2
"""The single-file format version the writer writes."""
READABLE_VERSIONS = (1, 2)
"""The single-file format versions the reader reads."""

_FILE_HEADER = struct.Struct("<8sI")
_RECORD_START = struct.Struct("<4sIdI")  # marker, n_parts, receive_time, table_crc
_CRC = struct.Struct("<I")
_RECORD = struct.Struct("<4sIdII")  # the above + header_crc
_MARKER = b"MREC"
_PART_ENTRY = struct.Struct("<QQ")  # size, XXH3-64
_ENTRY_SIZES = {1: 8, 2: _PART_ENTRY.size}
_RECEIVE_TIME_LIMIT = 1e11  # the year 5138: later times are damage, not clocks
_digest = xxhash.xxh3_64_intdigest

# Links are never followed and FIFOs never block an open: the file is checked to be a
# regular one before anything is read or written.
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NO_LINKS = getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)

_PART_NAME = re.compile(r"([0-9]+)_([0-9]+)\.raw")
_PARTIAL_SUFFIX = ".partial"
_WRITER_NAME = re.compile(r"[0-9]+_[0-9]+\.raw(\.partial)?")

PathLike = Union[str, "os.PathLike[str]"]
OnCorruption = Literal["raise", "stop"]


class RecordedMessage(NamedTuple):
    """One message read back from a recording.

    ``parts`` are ``bytes``; ``receive_time`` is seconds since the epoch, or ``None`` when
    the format does not store it (folder format); ``number`` is the message's number in
    the recording (0-based; in folders, the number in the file names).
    """

    parts: list[bytes]
    receive_time: float | None
    number: int


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


def _valid_receive_time(receive_time: float) -> bool:
    return 0.0 <= receive_time < _RECEIVE_TIME_LIMIT  # False for NaN and infinities


def _parent(path: str) -> str:
    return os.path.dirname(os.path.normpath(path)) or "."


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    kinds = [
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a device")


def _open_regular(
    path: str, flags: int, dir_fd: int | None = None, shown: str | None = None
) -> int:
    """Open a regular file without following a link or blocking on a FIFO.

    Raises `RecordingError` naming what the path is (as ``shown``, by default ``path``) if
    it is not a regular file, and ``OSError`` for other failures.
    """
    shown = path if shown is None else shown
    try:
        fd = os.open(path, flags | _NO_LINKS | _NO_WAIT, 0o666, dir_fd=dir_fd)
    except OSError as error:
        with contextlib.suppress(OSError):
            mode = os.lstat(path, dir_fd=dir_fd).st_mode
            if not stat.S_ISREG(mode) and not isinstance(error, FileExistsError):
                raise RecordingError(_not_regular(shown, mode)) from error
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RecordingError(_not_regular(shown, mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_regular(path: str, mode: int) -> str:
    return f"'{path}' is {_kind(mode)}, not a regular file; recordings use only regular files"


# ---------------------------------------------------------------------------- writers

_W = TypeVar("_W", bound="_Writer")


class _Writer(ABC):
    """What both writers share: counters, the failure latch and the context-manager protocol.

    Once a write failed part-way (a full disk, an interrupt), the recording ends in a
    partial message; appending more would bury it in the middle, where it is corruption. So
    after a failure the error propagates and every further `write` / `flush` raises
    `RecordingError`; `close` still releases the files. ``messages_written`` counts the
    messages `write` accepted: after a failed `flush`, the ones written since the last
    successful flush may be incomplete in the recording.
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

    @abstractmethod
    def discard(self) -> None:
        """Close and delete what this writer wrote (e.g. after a failed first write)."""

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
    refused unless ``overwrite`` is true; a symbolic link or anything but a regular file
    is refused even then, and so is a path whose folder does not exist.

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
        self._path: str | None = None
        if isinstance(target, (str, os.PathLike)):
            path = os.fspath(target)
            fd = _create_file(path, overwrite)
            try:
                self._file = open(fd, "wb", buffering=buffer_size)
            except BaseException:
                os.close(fd)
                raise
            self._path = path
        else:
            self._file = target
        # The file header goes out at once so that even an empty recording is recognisable.
        try:
            self._guarded(self._file.write, _FILE_HEADER.pack(MAGIC, VERSION))
            self._guarded(self._push)
        except BaseException:
            self.close()
            raise

    def write(self, parts: Iterable[object], receive_time: float | None = None) -> None:
        """Append one message; ``receive_time`` defaults to now (``time.time()``).

        An empty message, a part that is not a C-contiguous buffer or a receive time that
        is not a finite number of seconds from 0 to 1e11 raises `ConfigurationError`
        (``TypeError`` for a non-buffer) before anything is written.
        """
        self._check_writable()
        views = _views(parts)
        if receive_time is None:
            receive_time = time.time()
        elif not _valid_receive_time(receive_time):
            raise ConfigurationError(
                f"receive_time must be seconds since the epoch, from 0 to 1e11, "
                f"not {receive_time!r}"
            )
        table = b"".join([_PART_ENTRY.pack(view.nbytes, _digest(view)) for view in views])
        start = _RECORD_START.pack(_MARKER, len(views), receive_time, zlib.crc32(table))
        self._guarded(self._write_record, start + _CRC.pack(zlib.crc32(start)) + table, views)
        self.messages_written += 1
        self.bytes_written += sum(view.nbytes for view in views)

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
            if self._path is not None:
                self._close_file()

    def discard(self) -> None:
        """Close and delete the recording file (a file object passed in is only closed)."""
        with contextlib.suppress(OSError):
            self.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path)

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


def _create_file(path: str, overwrite: bool) -> int:
    """Open ``path`` for a new recording: a new regular file, or an emptied one."""
    try:
        fd = _open_regular(path, os.O_WRONLY | os.O_CREAT | (0 if overwrite else os.O_EXCL))
    except FileExistsError as error:
        raise RecordingError(
            f"'{path}' already exists; pass overwrite=True to replace it"
        ) from error
    except FileNotFoundError as error:
        raise RecordingError(
            f"cannot create '{path}': folder '{_parent(path)}' does not exist"
        ) from error
    except OSError as error:
        raise RecordingError(f"cannot create '{path}': {error.strerror}") from error
    try:
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


class FolderWriter(_Writer):
    """Writes messages in the 1.0 folder layout: one ``<message>_<part>.raw`` file per part.

    The folder is created if it does not exist; its parent folder must exist (as for a
    single-file recording). A folder that already holds part files (or the temporary
    ``.partial`` files of an interrupted writer) is refused unless ``overwrite`` is true,
    which deletes them first (stale parts would otherwise join the new messages). Every
    part file is created anew, never through a link. Receive times are not stored.
    Nothing is buffered: a message is in the folder when `write` returns.
    """

    def __init__(self, path: PathLike, *, overwrite: bool = False) -> None:
        super().__init__()
        self._path = os.fspath(path)
        self._created = _make_folder(self._path)
        self._folder = _open_folder(self._path)
        try:
            existing = _writer_entries(self._folder)
            if existing and not overwrite:
                raise RecordingError(
                    f"folder '{self._path}' already holds a recording ({len(existing)} part "
                    "files); pass overwrite=True to replace it"
                )
            for entry in existing:
                if entry.is_dir(follow_symlinks=False):
                    raise RecordingError(
                        f"'{os.path.join(self._path, entry.name)}' is a folder; "
                        "it cannot be replaced by a part file"
                    )
                os.unlink(entry.name, dir_fd=self._folder)
        except BaseException:
            os.close(self._folder)
            raise

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
        os.replace(first + _PARTIAL_SUFFIX, first, src_dir_fd=self._folder, dst_dir_fd=self._folder)

    def _write_file(self, name: str, view: memoryview) -> None:
        fd = _open_regular(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, dir_fd=self._folder)
        with open(fd, "wb") as file:
            file.write(view)

    def flush(self) -> None:
        """Nothing to do: `write` writes every part to its file."""
        self._check_writable()

    def close(self) -> None:
        """Refuse further writes. Idempotent."""
        if not self._closed:
            self._closed = True
            os.close(self._folder)

    def discard(self) -> None:
        """Close and delete the part files written, and the folder if it was created."""
        if not self._closed:
            for entry in _writer_entries(self._folder):
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=self._folder)
        self.close()
        if self._created:
            with contextlib.suppress(OSError):  # not empty: someone else's files are there
                os.rmdir(self._path)


def _part_file_name(message: int, part: int) -> str:
    return f"{message:06d}_{part:03d}.raw"


def _make_folder(path: str) -> bool:
    """Create the folder of a recording unless it exists; True if it was created."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError as error:
        if not os.path.isdir(path):
            raise RecordingError(f"'{path}' exists and is not a folder") from error
        return False
    except FileNotFoundError as error:
        raise RecordingError(
            f"cannot create folder '{path}': folder '{_parent(path)}' does not exist"
        ) from error
    except OSError as error:
        raise RecordingError(f"cannot create folder '{path}': {error.strerror}") from error


def _open_folder(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except OSError as error:
        raise RecordingError(f"cannot open folder '{path}': {error.strerror}") from error


def _writer_entries(folder: int) -> list[os.DirEntry[str]]:
    """The entries of a folder a writer would create or replace: part and partial files."""
    with os.scandir(folder) as entries:
        return [entry for entry in entries if _WRITER_NAME.fullmatch(entry.name)]


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

    def close(self) -> None:  # noqa: B027  (a hook: a reader without resources keeps it)
        """Release the recording. Idempotent."""

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecordingReader(_Reader):
    """Reads a single-file recording (version 1 or 2), yielding `RecordedMessage` objects.

    A truncated trailing record (its writer was killed, or the disk filled up) ends the
    iteration cleanly and sets ``truncated``. A damaged record (a header or part table
    that fails its CRC, a part that fails its checksum, no parts, an impossible receive
    time) raises `RecordingError` naming the record, or with ``on_corruption="stop"`` ends
    the iteration there and sets ``corruption``; every message before it was yielded.
    Version 1 files carry no part checksums: damage inside their payloads goes unnoticed
    (but cannot spread: the next record is found through the verified sizes). An
    iteration reads the part of the file that existed when it began. A symbolic link or
    anything but a regular file is refused.

    Parts are ``bytes`` rather than views of a memory map: they stay valid after the reader
    is closed, and a file that shrinks while it is read gives a truncated tail instead of a
    ``SIGBUS`` crash; one copy per part costs little next to sending it.
    """

    def __init__(self, path: PathLike, *, on_corruption: OnCorruption = "raise") -> None:
        super().__init__(on_corruption)
        self._path = os.fspath(path)
        try:
            fd = _open_regular(self._path, os.O_RDONLY)
        except FileNotFoundError as error:
            raise RecordingError(f"recording '{self._path}' does not exist") from error
        except OSError as error:
            raise RecordingError(
                f"cannot open recording '{self._path}': {error.strerror}"
            ) from error
        self._file = open(fd, "rb", buffering=1 << 16)
        try:
            self.version = self._check_file_header(self._file.read(_FILE_HEADER.size))
            """The format version of the file (one of `READABLE_VERSIONS`)."""
        except BaseException:
            self._file.close()
            raise

    @property
    def path(self) -> str:
        """The path of the recording."""
        return self._path

    def _check_file_header(self, data: bytes) -> int:
        if not data.startswith(MAGIC):
            problem = "is empty" if not data else "does not start with the mflow recording magic"
            raise RecordingError(f"'{self._path}' is not an mflow recording: it {problem}")
        if len(data) < _FILE_HEADER.size:
            raise RecordingError(
                f"'{self._path}' is not an mflow recording: its file header is cut short"
            )
        _, version = _FILE_HEADER.unpack(data)
        if version not in READABLE_VERSIONS:
            raise RecordingError(
                f"'{self._path}' is an mflow recording of version {version}; "
                f"this mflow reads versions {' and '.join(map(str, READABLE_VERSIONS))}"
            )
        return int(version)

    def close(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()

    def _messages(self) -> Iterator[RecordedMessage]:
        file = self._file
        entry_size = _ENTRY_SIZES[self.version]
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
            _, n_parts, receive_time, table_crc, header_crc = _RECORD.unpack(fixed)
            problem = _header_problem(fixed, header_crc, n_parts, receive_time)
            if problem:
                self._corrupt(self._damage(index, position, problem))
                return
            table_size = n_parts * entry_size
            payload_start = position + _RECORD.size + table_size
            if payload_start > end:
                self.truncated = True
                return
            table = file.read(table_size)
            if len(table) < table_size:  # the file shrank while being read
                self.truncated = True
                return
            if zlib.crc32(table) != table_crc:
                self._corrupt(self._damage(index, position, "has a damaged part table"))
                return
            values = struct.unpack(f"<{table_size // 8}Q", table)
            lengths = values if entry_size == 8 else values[0::2]
            payload_size = sum(lengths)
            if payload_start + payload_size > end:
                self.truncated = True
                return
            parts = [file.read(length) for length in lengths]
            if sum(map(len, parts)) < payload_size:  # the file shrank while being read
                self.truncated = True
                return
            if entry_size != 8:
                damaged = _damaged_part(parts, values[1::2])
                if damaged is not None:
                    problem = f"has a damaged part {damaged} (its checksum does not match)"
                    self._corrupt(self._damage(index, position, problem))
                    return
            yield RecordedMessage(parts, receive_time, index)
            position = payload_start + payload_size
            index += 1

    def _damage(self, index: int, position: int, problem: str) -> str:
        return f"'{self._path}' is corrupt: record {index} at byte {position} {problem}"


def _header_problem(fixed: bytes, header_crc: int, n_parts: int, receive_time: float) -> str | None:
    """What is wrong with a record header, or None if it can be trusted."""
    if zlib.crc32(fixed[: _RECORD_START.size]) != header_crc:
        return "has a damaged header"
    if n_parts == 0:
        return "has no parts"
    if not _valid_receive_time(receive_time):
        return f"has an impossible receive time ({receive_time!r})"
    return None


def _damaged_part(parts: list[bytes], digests: Iterable[int]) -> int | None:
    """The number of the first part that does not match its checksum, or None."""
    for number, (part, digest) in enumerate(zip(parts, digests, strict=True)):
        if _digest(part) != digest:
            return number
    return None


class FolderReader(_Reader):
    """Reads a folder recording (the 1.0 layout), yielding `RecordedMessage` objects in order.

    Only entries named ``<digits>_<digits>.raw`` count, and they must be regular files: a
    symbolic link, FIFO or device of such a name is refused with `RecordingError` (a
    folder of such a name is ignored, like every other entry). Messages and parts are
    ordered by their numbers, not by file name; ``number`` is the message number from the
    file names (1.0 recordings may skip numbers), and ``receive_time`` is ``None``. The
    folder is listed when the reader is created.

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
        self._folder = _open_folder(self._path)
        try:
            self._recording = sorted(_scan_folder(self._folder, self._path).items())
        except OSError as error:
            os.close(self._folder)
            raise RecordingError(f"cannot list folder '{self._path}': {error.strerror}") from error
        except BaseException:
            os.close(self._folder)
            raise
        self._closed = False

    @property
    def path(self) -> str:
        """The path of the recording."""
        return self._path

    def close(self) -> None:
        """Release the folder. Idempotent."""
        if not self._closed:
            self._closed = True
            os.close(self._folder)

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
            parts = [self._read_part(names[0]) for _, names in sorted(files.items())]
            yield RecordedMessage(parts, None, number)

    def _read_part(self, name: str) -> bytes:
        path = os.path.join(self._path, name)
        try:
            fd = _open_regular(name, os.O_RDONLY, dir_fd=self._folder, shown=path)
            with open(fd, "rb") as file:
                return file.read()
        except OSError as error:
            raise RecordingError(f"cannot read '{path}': {error.strerror}") from error


def _scan_folder(folder: int, path: str) -> dict[int, dict[int, list[str]]]:
    """The part files of a folder recording: message number → part number → file names.

    Raises `RecordingError` for an entry of a part file's name that is a link or special
    file: its bytes are not the recording's to send.
    """
    messages: dict[int, dict[int, list[str]]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = _PART_NAME.fullmatch(entry.name)
            if not match or entry.is_dir(follow_symlinks=False):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                raise RecordingError(_not_regular(os.path.join(path, entry.name), mode))
            parts = messages.setdefault(int(match[1]), {})
            parts.setdefault(int(match[2]), []).append(entry.name)
    return messages


def _message_problem(files: dict[int, list[str]]) -> str | None:
    """Why a message's part files do not form a message, or None if they do."""
    for part, names in sorted(files.items()):
        if len(names) > 1:
            return f"has several files for part {part}: {', '.join(sorted(names))}"
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
    file, a file of another kind, a symbolic link to a file).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return FolderReader(path, on_corruption=on_corruption)
    return RecordingReader(path, on_corruption=on_corruption)
