"""``alphad top`` against a real daemon: the ``--once`` frame, and the curses screen driven
in a pseudo-terminal and read back through a terminal emulator (pyte)."""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pyte
import pytest

from alphad.ipc import frames

sys.path.insert(0, str(Path(__file__).parent))
from daemon_rig import STAGES, Daemon, eventually  # noqa: E402

pytestmark = pytest.mark.slow


#: Rows the fixture's recording adds to the demo's, each refused by the feed's checks.
BAD_ROWS = ("1723161254087891300,BTCUSDT,quote",                               # short row
            "1723161254087891300,BTCUSDT,quote,-61837.63,3.7,61837.64,1.5,,",   # a negative price
            "1723161254087891300,ETHUSDT,quote,nan,3.0,2683.81,31.4,,")         # not finite


@pytest.fixture
def daemon(tmp_path):
    import gzip

    lines = gzip.open(Path(__file__).parents[2] / "data/demo_btc_eth_quotes_trades.csv.gz", "rt").read().splitlines()
    recording = tmp_path / "demo_with_bad_rows.csv"
    recording.write_text("\n".join(lines[:3] + list(BAD_ROWS) + lines[3:]) + "\n")
    d = Daemon(tmp_path, sections={"feed": {"path": str(recording)}})
    try:
        d.wait_ready()
        eventually(lambda: d.status().orders >= 3, timeout=120, what="three orders")
        yield d
    finally:
        d.stop()


def top_command(d: Daemon, *extra: str) -> list[str]:
    return [sys.executable, "-m", "alphad.daemon.cli", "top", "--endpoint", d.endpoint, "--config", str(d.config),
            *extra]


def test_top_once_when_daemon_trades_then_prints_stages_state_pnl_positions_and_risk(daemon):
    held = daemon.ctl(frames.Positions())
    assert isinstance(held, frames.PositionsReply) and held.positions, held

    out = subprocess.run(top_command(daemon, "--once"), capture_output=True, text=True, timeout=120)

    assert out.returncode == 0, out.stderr
    text = out.stdout
    for stage in STAGES:
        assert re.search(rf"^{stage}\s+yes\s+yes", text, re.M), text
    assert "STATE ACTIVE" in text
    assert re.search(r"PnL net [+-][\d,]+\.\d\d \| gross [+-][\d,]+\.\d\d .*\| fees [\d,]+\.\d\d", text), text
    for symbol in held.positions:
        assert re.search(rf"^{symbol}\s", text, re.M), text
    # risk's state read from shared memory: the demo universe is one sector
    assert "exposure by sector: crypto" in text and "drawdown ladder: normal" in text, text
    # the recording's bad rows, skipped and counted: on the screen, in ctl status and in /metrics
    assert f"feed skipped {len(BAD_ROWS)} bad records" in text, text
    assert daemon.status().feed_bad_records == len(BAD_ROWS)
    import urllib.request

    body = urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=5).read().decode()
    assert f"alphad_feed_bad_records_total {len(BAD_ROWS)}.0" in body, body[:2000]


class Terminal:
    """A child process on a pseudo-terminal of ``rows`` x ``cols``, read through pyte."""

    def __init__(self, argv: list[str], rows: int, cols: int):
        self.master, slave = os.openpty()
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self._size(rows, cols)
        env = {k: v for k, v in os.environ.items() if k not in ("LINES", "COLUMNS")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)

    def _size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows: int, cols: int) -> None:
        """The window changes size: the kernel's size, then SIGWINCH (the child has no
        controlling terminal, so the kernel would not send it)."""
        self._size(rows, cols)
        self.screen.resize(rows, cols)
        self.proc.send_signal(signal.SIGWINCH)

    def pump(self) -> None:
        """Feed what the child wrote so far to the emulator."""
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            self.stream.feed(data)

    def text(self) -> str:
        self.pump()
        return "\n".join(self.screen.display)

    def shows(self, *needles: str) -> str | bool:
        text = self.text()
        return all(n in text for n in needles) and text

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def test_top_screen_when_halted_resized_and_daemon_gone_then_shows_it_and_q_quits(daemon):
    term = Terminal(top_command(daemon, "--interval", "0.5"), rows=40, cols=120)
    try:
        text = eventually(lambda: term.shows("STATE ACTIVE", "PnL net", "fees", *STAGES), timeout=60,
                          what="the first frame")
        assert all(re.search(rf"^{s}\s+yes\s+yes", text, re.M) for s in STAGES), text

        assert isinstance(daemon.ctl(frames.Halt(reason="top test")), frames.Ok)
        eventually(lambda: term.shows("STATE HALTED (operator)", "trading HALTED: operator"), timeout=30,
                   what="HALTED on the screen")

        # a terminal too small for the frame: cut to it, the rest summed up, no crash
        term.resize(12, 60)
        text = eventually(lambda: term.shows("more lines: enlarge the terminal"), timeout=30, what="the cut frame")
        assert term.proc.poll() is None and all(len(line.rstrip()) < 60 for line in text.splitlines()), text

        # the daemon goes away: the screen says so and keeps asking
        daemon.stop()
        eventually(lambda: term.shows(f"no answer from {daemon.endpoint}"), timeout=30, what="no answer shown")
        assert term.proc.poll() is None

        os.write(term.master, b"q")
        eventually(lambda: term.pump() or term.proc.poll() is not None, timeout=30, what="top exits on q")
        assert term.proc.wait(timeout=10) == 0
    finally:
        term.close()
