"""Options shared by the commands, each defined once.

The decorators add a group of options and hand the command one object instead of many
arguments: `tool_options` → ``tool`` (`Tool`: output, limits, progress interval),
`socket_options` → ``socket`` (`SocketOptions`), `sender_options` → ``sender``
(`SenderOptions`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, cast

import click

from ._output import Output, configure_logging
from ._runtime import Limits, Run
from ._security import SecuritySettings, make_security, security_option_list, use_security
from ._sockets import Endpoint
from ._streams import start_tracking

__all__ = [
    "Tool",
    "SocketOptions",
    "SenderOptions",
    "tool_options",
    "socket_options",
    "sender_options",
    "linger_option",
    "address_option",
    "rate_option",
    "mode_choice",
    "parse_shape",
]


@dataclass
class Tool:
    """What every command has: where it prints, when it stops, how often it reports."""

    out: Output
    limits: Limits
    interval: float

    def run(self) -> Run:
        """A fresh `Run` with these limits (use it as a context manager).

        A live table on a terminal refreshes at least four times a second.
        """
        interval = min(self.interval, 0.25) if self.out.style == "rich" else self.interval
        return Run(self.limits, interval)

    def legacy_output(self, legacy: bool) -> bool:
        """For a 1.0 command (unless ``--json``): silence `out`, the command prints the 1.0
        lines itself; True if it should."""
        if not legacy or self.out.style == "json":
            return False
        self.out = Output("silent", self.out.verbosity)
        return True


@dataclass(frozen=True)
class SocketOptions:
    """``--mode``, ``--bind`` / ``--connect`` and ``--queue-size`` as given."""

    mode: str
    conn_type: str | None
    queue_size: int

    def endpoint(self, address: str, default_conn_type: str) -> Endpoint:
        """The endpoint for ``address``: as given, else by address, else the default."""
        return Endpoint.choose(
            address, self.mode, self.conn_type, default_conn_type, self.queue_size
        )


@dataclass(frozen=True)
class SenderOptions:
    """``--wait-for-peer``, ``--peer-timeout`` and ``--linger`` as given."""

    wait_for_peer: bool
    peer_timeout: float | None
    linger: float


def _with_options(
    options: list[Callable[[Any], Any]], convert: Callable[..., dict]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding ``options`` and replacing their values by ``convert(**values)``."""
    names = list(dict.fromkeys(option(lambda: None).__click_params__[0].name for option in options))

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return function(*args, **kwargs, **convert(**values))

        cast(Any, wrapper).__click_params__ = list(getattr(function, "__click_params__", []))
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def parse_shape(text: str) -> tuple[int, ...]:
    """A shape in numpy order (rows first): ``512x1024``, ``512,1024`` or ``1000``."""
    try:
        shape = tuple(int(n) for n in re.split(r"[x,]", text.lower()))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a shape (e.g. 512x1024)") from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{text!r} is not a shape (e.g. 512x1024)")
    return shape


def mode_choice(*modes: str) -> click.Choice:
    """A case-insensitive choice of socket modes (``push``, ``pull``, ``pub``, ``sub``)."""
    return click.Choice(modes, case_sensitive=False)


def _make_tool(
    count: int | None,
    duration: float | None,
    interval: float,
    json_lines: bool,
    verbose: int,
    quiet: int,
    **security: Any,
) -> dict[str, Tool]:
    start_tracking()
    use_security(make_security(**security) if security else SecuritySettings())
    verbosity = verbose - quiet
    configure_logging(verbosity)
    out = Output.for_terminal(json_lines, verbosity)
    return {"tool": Tool(out, Limits(count, duration), interval)}


def tool_options(
    interval: float = 1.0, duration: float | None = None, security: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-n/--count``, ``-d/--duration``, ``-i/--interval``, ``--json``, ``-v``, ``-q``, and
    with ``security`` the CURVE, address and size options (`mflow.cli._security`)."""
    return _with_options(
        [
            click.option(
                "-n",
                "--count",
                type=click.IntRange(min=0),
                default=None,
                help="Stop after this many messages.",
            ),
            click.option(
                "-d",
                "--duration",
                type=click.FloatRange(min=0),
                default=duration,
                show_default=duration is not None,
                help="Stop after this many seconds.",
            ),
            click.option(
                "-i",
                "--interval",
                type=click.FloatRange(min=0),
                default=interval,
                show_default=True,
                help="Seconds between progress reports.",
            ),
            click.option(
                "--json",
                "json_lines",
                is_flag=True,
                help="Print JSON objects, one per line, instead of text.",
            ),
            click.option("-v", "--verbose", count=True, help="More log output (-vv: debug)."),
            click.option(
                "-q",
                "--quiet",
                count=True,
                help="No progress reports, notes or warnings: the start line, the "
                "summary and errors only.",
            ),
            *(security_option_list if security else []),
        ],
        _make_tool,
    )


def socket_options(
    modes: tuple[str, ...], role: str, default: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-m/--mode`` (the first of ``modes`` is the default), ``--bind``/``--connect`` and
    ``--queue-size``.

    ``role`` names the socket in the help, e.g. "the source"; ``default`` describes
    whether it binds or connects when neither flag is given.
    """
    return _with_options(
        [
            click.option(
                "-m",
                "--mode",
                type=mode_choice(*modes),
                default=modes[0],
                show_default=True,
                help=f"Socket type of {role}.",
            ),
            click.option(
                "--bind",
                "conn_type",
                flag_value="bind",
                default=None,
                help=f"Bind {role} (default: {default}).",
            ),
            click.option("--connect", "conn_type", flag_value="connect", help=f"Connect {role}."),
            click.option(
                "--queue-size",
                type=click.IntRange(min=0),
                default=100,
                show_default=True,
                help="ZeroMQ high-water mark: messages queued per peer (0 = unlimited).",
            ),
        ],
        lambda mode, conn_type, queue_size: {
            "socket": SocketOptions(mode.lower(), conn_type, queue_size)
        },
    )


linger_option = click.option(
    "--linger",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds to let queued messages leave when closing.",
)
"""``--linger``: how long closing waits for queued messages (the socket's LINGER)."""

address_option = click.option(
    "-a",
    "--address",
    default="tcp://*:9999",
    show_default=True,
    help="Where to send: tcp://*:PORT binds, tcp://HOST:PORT with --connect.",
)
"""``-a/--address``: where a command sends the stream it makes (generate, replay)."""

rate_option = click.option(
    "-r",
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Messages per second [default: as fast as possible].",
)
"""``-r/--rate``: how fast a command sends the stream it makes (generate, replay)."""


def sender_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--wait-for-peer``, ``--peer-timeout``, ``--linger`` for commands that send."""
    return _with_options(
        [
            click.option(
                "--wait-for-peer",
                is_flag=True,
                help="Send nothing until a peer is connected (on PUB: subscribed).",
            ),
            click.option(
                "--peer-timeout",
                type=click.FloatRange(min=0),
                default=None,
                help="With --wait-for-peer: give up after this many seconds.",
            ),
            linger_option,
        ],
        lambda wait_for_peer, peer_timeout, linger: {
            "sender": SenderOptions(wait_for_peer, peer_timeout, linger)
        },
    )(function)
