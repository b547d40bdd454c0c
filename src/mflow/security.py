"""Security of the sockets mflow opens: CURVE keys, address allow/deny lists, counted refusals.

Detectors speak plain ZeroMQ, but every hop mflow adds (split and fan-out outputs, merge
inputs, replay, forward) can be encrypted and authenticated with CURVE, and can admit only
some peer addresses:

- `Curve.server` — this socket proves it holds ``secret_key``; clients must know its public
  key, and with ``allowed_keys`` only those clients get in.
- `Curve.client` — this socket checks that the server holds the secret of ``server_key``;
  its own key pair (made up when not given) is what a server's allow-list names.
- ``allow`` / ``deny`` — peer IP addresses let in or refused (ZAP; plain sockets too).

Keys are z85 text as ZeroMQ writes them, or files in the czmq certificate format that
`zmq.auth` reads and writes (`create_certificates`: ``NAME.key`` holds the public key,
``NAME.key_secret`` both).

Every refusal is counted in ``statistics.refused`` by reason and logged at INFO with the
peer: ``key`` (a client key not on the allow-list), ``address`` (an address denied or not
allowed), ``handshake`` (a plain peer of a CURVE socket, a wrong server key, or any other
failed security handshake). With ``max_message_size``, a peer that sends a larger message
loses its connection (libzmq closes it without a word): the stream counts those closes in
``statistics.refused["connection_closed"]`` — ZeroMQ does not tell an oversized message from
a peer that left, so that count is an upper bound of the messages refused for their size.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from .errors import ConfigurationError

__all__ = [
    "Curve",
    "Guard",
    "secure",
    "create_keys",
    "load_public_key",
    "load_secret_key",
    "load_public_keys",
]

logger = logging.getLogger(__name__)

KeyLike = bytes | str | os.PathLike


def _key_text(key: bytes | str) -> bytes:
    text = key.encode() if isinstance(key, str) else bytes(key)
    if len(text) != 40:
        raise ConfigurationError(f"a CURVE key is 40 characters of z85 text, not {len(text)}")
    return text


def _is_key_text(key: KeyLike) -> bool:
    return isinstance(key, (bytes, str)) and len(key) == 40 and not os.path.exists(key)


def _load(path: os.PathLike | str) -> tuple[bytes | None, bytes | None]:
    try:
        return zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"cannot read the key file '{os.fsdecode(path)}': {error}"
        ) from error


def load_public_key(key: KeyLike) -> bytes:
    """A public key: z85 text, or read from a certificate file."""
    if _is_key_text(key):
        return _key_text(key)  # type: ignore[arg-type]
    public, _ = _load(key)  # type: ignore[arg-type]
    if public is None:
        raise ConfigurationError(f"'{os.fsdecode(key)}' holds no public key")
    return public


def load_secret_key(key: KeyLike) -> tuple[bytes, bytes]:
    """(public, secret) from a secret certificate file (``NAME.key_secret``)."""
    public, secret = _load(key)  # type: ignore[arg-type]
    if public is None or secret is None:
        raise ConfigurationError(
            f"'{os.fsdecode(key)}' holds no secret key (give the NAME.key_secret file of "
            "`mflow keys`)"
        )
    return public, secret


def load_public_keys(location: KeyLike | Iterable[KeyLike]) -> frozenset[bytes]:
    """Public keys: every certificate in a folder, one file, or z85 texts and files."""
    if isinstance(location, (str, bytes, os.PathLike)):
        if not _is_key_text(location) and Path(os.fsdecode(location)).is_dir():
            return frozenset(zmq.auth.load_certificates(os.fsdecode(location)))
        return frozenset([load_public_key(location)])
    return frozenset(load_public_key(key) for key in location)


def create_keys(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write a new key pair as ``NAME.key`` and ``NAME.key_secret`` (czmq format).

    Refuses to overwrite existing files; the secret file is readable by its owner only.
    """
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigurationError(f"'{path}' already exists")
    folder.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(os.fspath(folder), name)
    secret.chmod(0o600)
    return public, secret


@dataclass(frozen=True)
class Curve:
    """CURVE settings of one socket; make them with `Curve.server` or `Curve.client`."""

    public_key: bytes
    secret_key: bytes
    #: The server's public key: set for a client, None for a server.
    server_key: bytes | None = None
    #: Client public keys a server lets in; None lets in every client that knows its key.
    allowed_keys: frozenset[bytes] | None = None

    @classmethod
    def server(
        cls, secret_key: KeyLike, allowed_keys: KeyLike | Iterable[KeyLike] | None = None
    ) -> Curve:
        """A CURVE server with the secret certificate file ``secret_key``.

        ``allowed_keys``: a folder of client certificates, a certificate file, or z85 keys.
        """
        public, secret = load_secret_key(secret_key)
        allowed = None if allowed_keys is None else load_public_keys(allowed_keys)
        return cls(public, secret, allowed_keys=allowed)

    @classmethod
    def client(cls, server_key: KeyLike, secret_key: KeyLike | None = None) -> Curve:
        """A CURVE client of the server whose public key is ``server_key``.

        ``secret_key`` is this client's secret certificate file; without one a key pair is
        made up (fine unless the server has an allow-list).
        """
        public, secret = zmq.curve_keypair() if secret_key is None else load_secret_key(secret_key)
        return cls(public, secret, server_key=load_public_key(server_key))

    @property
    def is_server(self) -> bool:
        """True for a CURVE server."""
        return self.server_key is None


_ZAP_REBIND_SECONDS = 2.0


class _Zap:
    """One ZAP authenticator per context, shared by the streams that need it."""

    _by_context: ClassVar[weakref.WeakKeyDictionary[zmq.Context, _Zap]] = (
        weakref.WeakKeyDictionary()
    )
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, context: zmq.Context) -> None:
        # A ZAP handler of this context that just stopped frees its endpoint only once
        # libzmq has reaped its socket, in the background, a moment later.
        deadline = time.monotonic() + _ZAP_REBIND_SECONDS
        while True:
            self.authenticator = ThreadAuthenticator(
                context, log=logging.getLogger("mflow.security.zap")
            )
            try:
                self.authenticator.start()
                break
            except zmq.ZMQError as error:
                zap_socket = getattr(self.authenticator, "zap_socket", None)
                if zap_socket is not None:
                    zap_socket.close(linger=0)
                if error.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        self.users = 0

    @classmethod
    def acquire(cls, context: zmq.Context) -> _Zap:
        with cls._lock:
            zap = cls._by_context.get(context)
            if zap is None:
                zap = cls._by_context[context] = cls(context)
            zap.users += 1
            return zap

    def release(self, context: zmq.Context) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self.authenticator.stop()
                self._by_context.pop(context, None)


class _KeyCheck:
    """The ZAP credentials callback of one server socket: its allow-list."""

    def __init__(
        self, allowed: frozenset[bytes] | None, refused: Callable[[str, str], None]
    ) -> None:
        self.allowed = allowed
        self.refused = refused

    def callback(self, domain: str, key: bytes) -> bool:
        if self.allowed is None or key in self.allowed:
            return True
        self.refused("key", f"client key {key.decode(errors='replace')} is not allowed")
        return False


#: libzmq's monitor events of failed security handshakes, by reason.
_HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake",
}


class Guard:
    """What `secure` set up for one socket: counts refusals; `close` it with the socket."""

    def __init__(self, count: Callable[[str], None], *, count_closes: bool) -> None:
        self.count = count
        self.count_closes = count_closes
        self._zap: tuple[_Zap, zmq.Context] | None = None
        self._key_refusals = 0

    def _refuse(self, reason: str, detail: str) -> None:
        self.count(reason)
        logger.info("refused a peer (%s): %s", reason, detail)

    def _key_refused(self, reason: str, detail: str) -> None:
        # Counted here as "key"; the monitor's "auth" event of the same refusal is skipped.
        self._key_refusals += 1
        self._refuse(reason, detail)

    def on_event(self, event: dict[str, Any] | None) -> None:
        """A socket monitor callback (see `mflow.Stream.register_socket_monitor`)."""
        if event is None:
            return
        kind = event.get("event")
        reason = _HANDSHAKE_FAILURES.get(kind)  # type: ignore[arg-type]
        endpoint = event.get("endpoint", b"")
        if isinstance(endpoint, bytes):
            endpoint = endpoint.decode(errors="replace")
        if reason == "auth":
            if self._key_refusals:
                self._key_refusals -= 1
                return
            self._refuse("address", f"peer of {endpoint} denied by the address lists")
        elif reason is not None:
            self._refuse(reason, f"security handshake with a peer of {endpoint} failed")
        elif kind == zmq.EVENT_DISCONNECTED and self.count_closes:
            self._refuse(
                "connection_closed",
                f"connection of {endpoint} closed (a message over max_message_size closes it)",
            )

    def close(self) -> None:
        """Release the ZAP authenticator (call after the socket is closed)."""
        if self._zap is not None:
            zap, context = self._zap
            self._zap = None
            zap.release(context)


def secure(
    socket: zmq.Socket,
    context: zmq.Context,
    count: Callable[[str], None],
    *,
    curve: Curve | None = None,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
    max_message_size: int | None = None,
) -> Guard | None:
    """Configure ``socket`` (not yet bound or connected) as asked; None if nothing is asked.

    The returned `Guard` must receive the socket's monitor events (`Guard.on_event`) for
    refusals to be counted: it calls ``count(reason)`` for each.
    """
    allow, deny = list(allow or ()), list(deny or ())
    if allow and deny:
        raise ConfigurationError("give addresses to allow or to deny, not both")
    if curve is None and not allow and not deny and max_message_size is None:
        return None
    guard = Guard(count, count_closes=max_message_size is not None)
    if curve is not None:
        socket.curve_secretkey = curve.secret_key
        socket.curve_publickey = curve.public_key
        if curve.is_server:
            socket.curve_server = True
        else:
            socket.curve_serverkey = curve.server_key
    server = curve is not None and curve.is_server
    if server or allow or deny:
        zap = _Zap.acquire(context)
        guard._zap = (zap, context)
        domain = f"mflow-{id(guard)}"
        socket.zap_domain = domain.encode()
        if curve is not None and curve.is_server:
            zap.authenticator.configure_curve_callback(
                domain, _KeyCheck(curve.allowed_keys, guard._key_refused)
            )
        if allow:
            zap.authenticator.allow(*allow)
        if deny:
            zap.authenticator.deny(*deny)
    return guard
