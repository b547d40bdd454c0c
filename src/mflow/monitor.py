"""Socket-event monitoring: the listener thread, connection counting, the no-client action.

`SocketEventListener` runs a daemon thread that reads the socket's monitor events and hands
each to every callback; when no event arrives within its receive timeout it calls them with
``None`` (a heartbeat), so time-based callbacks such as `no_clients_timeout_notifier` run.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, cast

import zmq

__all__ = ["SocketEventListener", "ConnectionCountMonitor", "no_clients_timeout_notifier"]

logger = logging.getLogger(__name__)


class SocketEventListener:
    """Feeds the monitor events of one socket to ``callbacks`` from a background thread.

    ``callbacks`` is read live (a stream passes its own list), ``events`` defaults to all
    events, ``receive_timeout`` (seconds) is the heartbeat period, by default the class
    attribute ``DEFAULT_SOCKET_RECEIVE_TIMEOUT`` as it is when the listener is created.

    Unlike 1.0 the thread does not end at the first ``EVENT_CLOSED`` (libzmq also sends it
    for single connections) but when stopped or when the socket closes, and the monitor is
    disabled from the thread that owns the socket.
    """

    DEFAULT_SOCKET_RECEIVE_TIMEOUT = 0.1

    def __init__(
        self, callbacks: list, events: int | None = None, receive_timeout: float | None = None
    ) -> None:
        self.callbacks = callbacks
        self.events = zmq.EVENT_ALL if events is None else events
        if receive_timeout is None:
            receive_timeout = self.DEFAULT_SOCKET_RECEIVE_TIMEOUT
        self.receive_timeout = int(receive_timeout * 1000)
        self.monitor_listening = threading.Event()
        self.monitor_thread: threading.Thread | None = None
        self._socket: zmq.Socket | None = None
        self._monitor_socket: zmq.Socket | None = None

    def start(self, socket: zmq.Socket) -> None:
        """Start listening to ``socket``'s events (no-op if already listening)."""
        if self.monitor_listening.is_set():
            return
        self._monitor_socket = socket.get_monitor_socket(self.events)
        self._monitor_socket.rcvtimeo = self.receive_timeout
        self._socket = socket
        self.monitor_listening.set()
        self.monitor_thread = threading.Thread(
            target=self._listen, name="mflow-socket-events", daemon=True
        )
        self.monitor_thread.start()

    def _notify(self, event: dict | None) -> None:
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:
                logger.exception("socket event callback %r failed", callback)

    def _listen(self) -> None:
        # Imported here: zmq.utils.monitor imports asyncio, which `import mflow` need not.
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor_listening.is_set():
            try:
                # start() sets the monitor socket before it starts this thread
                event = recv_monitor_message(cast("zmq.Socket[bytes]", self._monitor_socket))
            except zmq.Again:
                self._notify(None)
                continue
            except zmq.ZMQError:
                return
            self._notify(cast(dict, event))  # a plain dict at run time
            if event["event"] == zmq.EVENT_MONITOR_STOPPED:
                return

    def stop(self) -> None:
        """Stop the thread and the monitor (call from the thread that owns the socket).

        May be called after the socket was closed, which lets the listener see the
        socket's own closing events. The monitor socket stays open until the socket has
        stopped sending events to it: libzmq blocks on sending an event to a closed
        monitor socket.
        """
        self.monitor_listening.clear()
        if self.monitor_thread is not None:
            self.monitor_thread.join()
            self.monitor_thread = None
        if self._socket is not None:
            if not self._socket.closed:
                self._socket.disable_monitor()
            cast(zmq.Socket, self._monitor_socket).close(linger=0)  # set with _socket
            self._socket = self._monitor_socket = None


class ConnectionCountMonitor:
    """Counts the peers connected to a socket and reports the count to ``callback``.

    Both sides count: ``EVENT_ACCEPTED`` (bind side) and ``EVENT_CONNECTED`` (connect side)
    add one, ``EVENT_DISCONNECTED`` removes one, never below zero. ``callback(count)`` runs
    at creation, on every event and on every heartbeat.
    """

    def __init__(self, callback: Callable[[int], Any]) -> None:
        self.callback = callback
        self.client_counter = 0
        callback(0)

    def __call__(self, event: dict | None) -> None:
        if event is not None:
            kind = event["event"]
            if kind in (zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED):
                self.client_counter += 1
            elif kind == zmq.EVENT_DISCONNECTED:
                self.client_counter = max(0, self.client_counter - 1)
            elif kind == zmq.EVENT_MONITOR_STOPPED:
                self.client_counter = 0
        self.callback(self.client_counter)


def no_clients_timeout_notifier(
    no_client_action: Callable[[], Any], no_client_timeout: float
) -> Callable[[int], None]:
    """A connection-count callback that calls ``no_client_action()`` once nobody has been
    connected for ``no_client_timeout`` seconds, and again every such period after that."""
    since: list[float | None] = [None]

    def notify(count: int) -> None:
        if count > 0:
            since[0] = None
            return
        now = time.monotonic()
        if since[0] is None:
            since[0] = now
        elif now - since[0] >= no_client_timeout:
            since[0] = now
            no_client_action()

    return notify
