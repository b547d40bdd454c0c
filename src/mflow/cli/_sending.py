"""The sending side shared by ``generate``, ``replay`` and ``demo``.

`Sender` owns the sending stream and its meter: it binds (or connects), announces the
endpoint, optionally waits for a peer, sends whole messages while honouring the stop
conditions, and reports. Closing it disconnects, giving queued messages ``--linger``
seconds to leave.
"""

from __future__ import annotations

from typing import Any, Sequence

import mflow
from mflow.errors import StreamError

from ._options import SenderOptions, Tool
from ._output import Report, traffic_fields
from ._runtime import Meter, Run
from ._sockets import Endpoint, PeerWatch, message_size, open_stream, send_message

__all__ = ["Sender"]


class Sender:
    """A stream to send to, and the count of what was sent (a context manager)."""

    def __init__(self, endpoint: Endpoint, options: SenderOptions, tool: Tool,
                 announce: bool = True) -> None:
        self.endpoint = endpoint
        self.options = options
        self.out = tool.out
        self.meter = Meter()
        self._peers = PeerWatch() if options.wait_for_peer else None
        self.stream = open_stream(endpoint, linger=options.linger, peers=self._peers)
        if announce:
            self.out.event("start", endpoint.describe(self.stream),
                           endpoint=self.stream.endpoint, mode=endpoint.mode,
                           conn_type=endpoint.conn_type)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._peers is not None:
            self._peers.detach(self.stream)
        self.stream.disconnect()

    def wait_for_peer(self, run: Run) -> bool:
        """With ``--wait-for-peer``: wait for a peer, then restart the run's clock.

        False if the run was stopped first; `StreamError` after ``--peer-timeout``.
        """
        if self._peers is None:
            return True
        self.out.note(f"Waiting for a peer on {self.stream.endpoint} ...")
        if self._peers.wait(self.stream, run, self.options.peer_timeout):
            run.restart()
            self.meter.restart()
            return True
        if run.stopped():
            return False
        raise StreamError(f"no peer connected to {self.stream.endpoint} within "
                          f"{self.options.peer_timeout:g} s")

    def send(self, parts: Sequence[Any], run: Run) -> bool:
        """Send one message whole; False if the run was stopped before it could go."""
        if not send_message(self.stream, parts, run):
            return False
        self.meter.add(message_size(parts))
        return True

    def report(self, final: bool = False) -> Report:
        """Messages, bytes and rates sent so far."""
        sample = self.meter.sample()
        return Report(sample, traffic_fields(sample, final, verb="messages sent"))

    @property
    def statistics(self) -> mflow.Statistics:
        """The stream's statistics (``send_dropped``)."""
        return self.stream.statistics
