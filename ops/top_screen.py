"""``alphad top``'s curses screen: paints the rendered lines, cut to the terminal's size, and
waits for keys between refreshes.

Painting never fails on a small or resized terminal: lines are cut to the width, the ones
that do not fit the height are summed up in a last line, and a curses error on one cell
(a resize racing the paint) is skipped, the next paint being whole again.
"""
from __future__ import annotations

import curses
import os
import time
from collections.abc import Callable

from alphad.ops.top_render import Line


def fit(lines: list[Line], height: int, width: int) -> list[Line]:
    """``lines`` cut to a ``height`` x ``width`` screen.  The last column stays empty: curses
    refuses a write into the bottom-right cell."""
    if height <= 0 or width <= 1:
        return []
    if len(lines) > height:
        hidden = len(lines) - height + 1
        lines = lines[:height - 1] + [Line(f"... {hidden} more lines: enlarge the terminal", "dim")]
    return [Line(line.text[:width - 1], line.style) for line in lines]


def watch(frame: Callable[[], list[Line]], interval_s: float) -> int:
    """Paint ``frame()`` every ``interval_s`` seconds until ``q`` (or Ctrl-C); returns 0."""
    try:
        return curses.wrapper(_loop, frame, interval_s)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is a way to quit a live view, not a failure
    except curses.error as e:  # no usable terminal description (setupterm), before any paint
        raise RuntimeError(f"cannot drive this terminal (TERM={os.environ.get('TERM')!r}): {e}; "
                           "use --once for plain text") from None


def _loop(scr, frame: Callable[[], list[Line]], interval_s: float) -> int:
    styles = _styles()
    try:
        curses.curs_set(0)
    except curses.error:
        pass  # a terminal that cannot hide its cursor shows it
    while True:
        lines = frame()
        paint(scr, lines, styles)
        deadline = time.monotonic() + interval_s
        while (left := deadline - time.monotonic()) > 0:
            scr.timeout(max(1, int(left * 1000)))
            key = scr.getch()
            if key in (ord("q"), ord("Q")):
                return 0
            if key in (ord("r"), ord("R")):
                break
            if key == curses.KEY_RESIZE:
                paint(scr, lines, styles)  # the same frame, cut to the new size at once


def paint(scr, lines: list[Line], styles: dict[str, int]) -> None:
    height, width = scr.getmaxyx()
    scr.erase()
    for y, line in enumerate(fit(lines, height, width)):
        try:
            scr.addstr(y, 0, line.text, styles.get(line.style, 0))
        except curses.error:
            pass  # the terminal shrank between getmaxyx and this write
    try:
        scr.refresh()
    except curses.error:
        pass


def _styles() -> dict[str, int]:
    styles = {"title": curses.A_REVERSE, "head": curses.A_BOLD, "alert": curses.A_BOLD, "dim": curses.A_DIM}
    if curses.has_colors():
        try:
            curses.start_color()
            curses.use_default_colors()
            curses.init_pair(1, curses.COLOR_RED, -1)
            styles["alert"] = curses.color_pair(1) | curses.A_BOLD
        except curses.error:
            pass  # bold alone marks an alert
    return styles
