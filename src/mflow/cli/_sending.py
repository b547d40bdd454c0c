"""The sending side shared by ``generate``, ``replay``, ``merge`` and ``demo``.

`Sender` owns the sending stream and its meter: it binds (or connects), announces the
endpoint, optionally waits for a peer, sends whole messages while honouring the stop
conditions, and reports. Closing it disconnects, giving queued messages ``--linger``
seconds to leave; only then is it known what was not delivered (`mflow.Delivery`), so
the summary comes after `close` and the exit status is 1 if anything was not.
"""

from __future__ import annotations

from typing import Any, Sequence

import mflow
from mflow.errors import StreamError

from ._options import SenderOptions, Tool
from ._output import Report, traffic_fields
from ._runtime import EXIT_ERROR, Meter, Run
from ._sockets import Endpoint, delivery_of, message_size, open_stream, send_message, wait_for_peer

__all__ = ["Sender", "delivery_fields", "delivery_exit_code"]


def delivery_fields(delivery: mflow.Delivery) -> list[tuple[str, str]]:
    """The summary line of what did not reach a peer."""
    return [("undelivered", delivery.describe())]


def delivery_exit_code(run: Run, *deliveries: mflow.Delivery) -> int:
    """The run's status, or 1 if a message was (or may have been) not delivered."""
    if run.exit_code or not any(delivery.undelivered for delivery in deliveries):
        return run.exit_code
    return EXIT_ERROR


class Sender:
    """A stream to send to, and the count of what was sent (a context manager)."""

    def __init__(
        self,
        endpoint: Endpoint,
        options: SenderOptions,
        tool: Tool,
        announce: bool = True,
        zero_copy: bool = False,
    ) -> None:
        """``zero_copy``: the parts given to `send` are never changed afterwards, so large
        ones are sent from their own memory (pyzmq ``copy=False``) instead of a copy."""
        self.endpoint = endpoint
        self.options = options
        self.out = tool.out
        self.meter = Meter()
        self.stream = open_stream(
            endpoint, linger=options.linger, subscriptions=options.wait_for_peer
        )
        self.stream.zmq_copy = not zero_copy
        self.delivery = delivery_of(self.stream)
        if announce:
            self.out.event(
                "start",
                endpoint.describe(self.stream),
                endpoint=self.stream.endpoint,
                mode=endpoint.mode,
                conn_type=endpoint.conn_type,
            )

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (idempotent), waiting up to ``--linger`` for queued messages."""
        self.stream.disconnect()

    def wait_for_peer(self, run: Run) -> bool:
        """With ``--wait-for-peer``: wait for a peer, then restart the run's clock.

        False if the run was stopped first; `StreamError` after ``--peer-timeout``.
        """
        if not self.options.wait_for_peer:
            return True
        self.out.note(f"Waiting for a peer on {self.stream.endpoint} ...")
        if wait_for_peer(self.stream, run, self.options.peer_timeout, subscriptions=True):
            run.restart()
            self.meter.restart()
            return True
        if run.stopped():
            return False
        raise StreamError(
            f"no peer connected to {self.stream.endpoint} within {self.options.peer_timeout:g} s"
        )

    def send(self, parts: Sequence[Any], run: Run) -> bool:
        """Send one message whole; False if the run was stopped before it could go."""
        if not send_message(self.stream, parts, run):
            return False
        self.meter.add(message_size(parts))
        return True

    def report(self, final: bool = False) -> Report:
        """Messages, bytes and rates sent so far; ``final`` (after `close`): and what
        was not delivered."""
        sample = self.meter.sample()
        fields = traffic_fields(sample, final, verb="messages sent")
        if not final:
            return Report(sample, fields)
        return Report(
            {**sample, **self.delivery.as_dict()}, fields + delivery_fields(self.delivery)
        )

    def exit_code(self, run: Run) -> int:
        """The status to exit with (after `close`): see `delivery_exit_code`."""
        return delivery_exit_code(run, self.delivery)

    @property
    def statistics(self) -> mflow.Statistics:
        """The stream's statistics (``send_dropped``)."""
        return self.stream.statistics
