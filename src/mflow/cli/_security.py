"""The security options every networked command shares, and what they make of a socket.

``--curve-secret-key``, ``--curve-server-key``, ``--curve-allow``, ``--allow-address``,
``--deny-address`` and ``--max-message-size`` apply to every socket a command opens, by
its side: a socket that binds is a CURVE server (with the command's own secret key and,
given ``--curve-allow``, only the clients whose public keys are in that folder), a socket
that connects is a CURVE client of the server named by ``--curve-server-key``. A socket
whose side has no key stays plain, e.g. the input of a split that connects to a detector.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import mflow
from mflow.errors import ConfigurationError

__all__ = [
    "SecuritySettings",
    "security_option_list",
    "make_security",
    "use_security",
    "secure_connect_arguments",
]


@dataclass(frozen=True)
class SecuritySettings:
    """The security options as given."""

    secret_key: Path | None = None
    server_key: Path | None = None
    allowed_keys: Path | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    max_message_size: int | None = None

    def check(self) -> None:
        """Raise `ConfigurationError` for combinations that would do nothing."""
        if self.allowed_keys is not None and self.secret_key is None:
            raise ConfigurationError(
                "--curve-allow needs --curve-secret-key (the server's own key)"
            )
        if self.allow and self.deny:
            raise ConfigurationError("give --allow-address or --deny-address, not both")

    def connect_arguments(self, conn_type: str) -> dict[str, Any]:
        """The `mflow.connect` arguments for a socket that binds or connects."""
        from mflow.security import Curve

        arguments: dict[str, Any] = {
            "allow": list(self.allow),
            "deny": list(self.deny),
            "max_message_size": self.max_message_size,
        }
        if conn_type == mflow.BIND and self.secret_key is not None:
            arguments["curve"] = Curve.server(self.secret_key, self.allowed_keys)
        elif conn_type != mflow.BIND and self.server_key is not None:
            arguments["curve"] = Curve.client(self.server_key, self.secret_key)
        return arguments


_current: ContextVar[SecuritySettings | None] = ContextVar("security", default=None)


def _settings() -> SecuritySettings:
    settings = _current.get()
    if settings is None:
        settings = SecuritySettings()
        _current.set(settings)
    return settings


def use_security(settings: SecuritySettings) -> None:
    """Make ``settings`` apply to every socket the command opens from now on."""
    settings.check()
    _current.set(settings)


def secure_connect_arguments(conn_type: str) -> dict[str, Any]:
    """The current command's security arguments for `mflow.connect`."""
    return _settings().connect_arguments(conn_type)


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

#: The options (click decorators) and the names of their values.
security_option_list = [
    click.option(
        "--curve-secret-key",
        type=_FILE,
        default=None,
        help="This side's CURVE secret key file (NAME.key_secret of `mflow keys`): "
        "sockets that bind become CURVE servers; connecting ones use it as "
        "their client key.",
    ),
    click.option(
        "--curve-server-key",
        type=_FILE,
        default=None,
        help="The CURVE server's public key file (NAME.key): sockets that connect "
        "become CURVE clients of that server.",
    ),
    click.option(
        "--curve-allow",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None,
        help="Folder of client public key files: binding CURVE sockets let in only those clients.",
    ),
    click.option(
        "--allow-address",
        "allow",
        multiple=True,
        metavar="IP",
        help="Let in only peers from this address (repeatable).",
    ),
    click.option(
        "--deny-address",
        "deny",
        multiple=True,
        metavar="IP",
        help="Refuse peers from this address (repeatable).",
    ),
    click.option(
        "--max-message-size",
        type=click.IntRange(min=1),
        default=None,
        metavar="BYTES",
        help="Refuse larger messages: ZeroMQ closes the sender's connection; "
        "each close is counted.",
    ),
]


def make_security(
    curve_secret_key: Path | None,
    curve_server_key: Path | None,
    curve_allow: Path | None,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    max_message_size: int | None,
) -> SecuritySettings:
    """The settings of the options' values."""
    return SecuritySettings(
        curve_secret_key, curve_server_key, curve_allow, allow, deny, max_message_size
    )
