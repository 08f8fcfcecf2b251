"""The table of ``ops/bench_ab.sh``'s rounds: p50 / p99 / p99.9 µs per round, and the medians.

``python ops/bench_ab_report.py OUT`` prints one Markdown row per configuration.
"""
from __future__ import annotations

import glob
import json
import re
import statistics
import sys


def rows(out: str) -> dict[str, dict[int, dict | None]]:
    found: dict[str, dict[int, dict | None]] = {}
    for path in sorted(glob.glob(f"{out}/*.json")):
        key, r = re.match(r"(.*)-(\d+)$", path.rsplit("/", 1)[-1][:-5]).groups()
        try:
            d = json.load(open(path))
            found.setdefault(key, {})[int(r)] = d.get("tick_to_trade_us") or d.get("chain_us")
        except (OSError, ValueError):
            found.setdefault(key, {})[int(r)] = None
    return found


def main(out: str) -> None:
    for key, by_round in sorted(rows(out).items()):
        cells, p50, p99 = [], [], []
        for r in sorted(by_round):
            t = by_round[r]
            if not t or t.get("p50") is None:
                cells.append("failed")
                continue
            cells.append(f"**{t['p50']:.1f}** / {t['p99']:.1f} / {t.get('p999') or 0:,.0f}")
            p50.append(t["p50"])
            p99.append(t["p99"])
        median = f"{statistics.median(p50):.1f} / {statistics.median(p99):.1f}" if p50 else "-"
        print(f"| {key} | " + " | ".join(cells) + f" | {median} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench-ab")
