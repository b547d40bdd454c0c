"""ThroughputStatistics and its printer (bug B9: no division by zero)."""

from __future__ import annotations

import time

from mflow.statistics import Statistics
from mflow.throughput import ThroughputStatistics, ThroughputStatisticsPrinter


def stats(messages: int, total: int) -> Statistics:
    s = Statistics()
    s.messages_received, s.total_bytes_received = messages, total
    return s


def test_samples_after_the_interval(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    throughput = ThroughputStatistics(sampling_interval=0.2)
    assert throughput.n.initial_time == 1000.0  # the 1.0 attribute names
    now[0] += 0.1
    assert throughput.save_statistics(stats(1, 100)) is False
    now[0] += 0.4
    assert throughput.save_statistics(stats(10, 1000)) is True
    sample = throughput.get_last_sampled_statistics()
    assert abs(sample["message_rate"] - 20) < 1e-6 and abs(sample["data_rate"] - 2000) < 1e-6
    summary = throughput.get_statistics()
    assert list(summary) == sorted(summary)
    assert summary["messages_received"] == 10 and summary["average_message_size"] == 100


def test_no_messages_does_not_divide_by_zero(capsys):
    throughput = ThroughputStatistics(sampling_interval=0)
    assert throughput.get_statistics() == {}
    throughput.save_statistics(stats(0, 0))
    assert throughput.get_statistics()["average_message_size"] == 0
    printer = ThroughputStatisticsPrinter()
    printer.print_statistics()
    printer.close()
    out = capsys.readouterr().out
    assert "No messages received." in out and out.count("_" * 60) == 2


def test_printer_summary(monkeypatch, capsys):
    now = [50.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    printer = ThroughputStatisticsPrinter(sampling_interval=0.5)
    now[0] += 1.0
    printer.save_statistics(stats(4, 4_000_000))
    printer.close()
    out = capsys.readouterr().out
    assert "Data rate:      4.000 MB/s    Message rate:      4.000 Hz" in out
    assert "Messages received:             4 messages" in out
    assert "Average message size:      1.000 MB" in out


def test_flush_samples_pending_data(monkeypatch):
    now = [10.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    throughput = ThroughputStatistics(sampling_interval=100)
    now[0] += 1
    throughput.save_statistics(stats(2, 20))
    assert throughput.get_statistics_raw() == type(throughput._buffer)(maxlen=100)
    throughput.flush()
    assert throughput.get_last_sampled_statistics()["message_rate"] == 2
