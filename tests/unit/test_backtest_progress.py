"""The backtest's progress lines (daemon/shell/progress.py): stderr only, on a terminal every
second in place, in a log every ten seconds (a short run writes nothing)."""
from __future__ import annotations

import io

from alphad.daemon.shell.progress import Progress

S = 1_000_000_000
TS = 1_723_161_600 * S  # 2024-08-09 00:00 UTC


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_progress_when_not_a_terminal_then_a_plain_line_every_ten_seconds_only():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(stream=out, tty=False, clock=clock)
    clock.now = 9 * S
    p.update(1_000_000, TS)
    p.close(TS)
    assert out.getvalue() == ""  # a short run: nothing
    clock.now = 10 * S
    p.update(2_000_000, TS + 60 * S)
    clock.now = 15 * S
    p.update(3_000_000, TS + 120 * S)  # within the next ten seconds: no line
    assert out.getvalue() == "backtest: 2,000,000 events, 200,000 events/s, event time 2024-08-09 00:01 UTC\n"
    p.close(TS + 120 * S)
    assert out.getvalue().splitlines()[-1] == "backtest: 3,000,000 events, 200,000 events/s, event time " \
                                              "2024-08-09 00:02 UTC"


def test_progress_when_a_terminal_then_rewritten_in_place_each_second_and_ended_with_a_newline():
    clock, out = FakeClock(), io.StringIO()
    p = Progress(stream=out, tty=True, clock=clock)
    clock.now = 5 * S  # compiling: the rate counts from begin()
    p.begin()
    for k in range(1, 3):
        clock.now = (5 + k) * S
        p.update(k * 500_000, TS)
    p.close(TS)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "\rbacktest: 500,000 events, 500,000 events/s" in text


def test_progress_when_ticked_per_event_then_the_clock_is_read_every_1024_events():
    reads = []

    def clock():
        reads.append(1)
        return len(reads) * 20 * S

    p = Progress(stream=io.StringIO(), tty=False, clock=clock)
    before = len(reads)
    for _ in range(4096):
        p.tick(TS)
    assert len(reads) - before == 4 and p.lines == 4
