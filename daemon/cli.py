"""``alphad``: the one console script.

Each sub-command lives in its own module, imported only when that sub-command
runs, so ``alphad ctl status`` never pays for Numba or ONNX Runtime.  A module
exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("alphad.daemon.supervisor.supervisor", "start every stage process of the topology and supervise them"),
    "stage": ("alphad.daemon.shell.stage_main", "run the stages of one process (started by `run` or systemd)"),
    "gateway": ("alphad.daemon.shell.gateway", "run a live venue's gateway process (started by `run`)"),
    "ctl": ("alphad.ops.ctl", "send a command to a running daemon's control port"),
    "backtest": ("alphad.daemon.shell.backtest", "replay the feed through every stage core in one process on a simulated clock"),
    "replay": ("alphad.ops.replay", "the real processes over the whole feed in lockstep on event time (= backtest)"),
    "bench": ("alphad.ops.bench", "tick-to-trade latency benchmark over the real processes"),
    "bench-gateway": ("alphad.ops.gateway_bench", "the gateway hop: router -> gateway -> (fake) Alpaca -> exec report back"),
    "train-demo": ("alphad.ops.demo_model", "train the demo LightGBM model on the replay slice and export ONNX"),
    "train": ("alphad.ops.train_cli", "walk-forward / purged-CV LightGBM training with gates and ONNX export"),
    "features": ("alphad.ops.features_cli", "compute a feature set over a bar or quote file"),
    "tca": ("alphad.ops.tca_cli", "transaction-cost analysis report from the journal"),
    "chaos": ("alphad.ops.chaos", "SIGKILL random stages of a running daemon, then audit its journal"),
    "soak": ("alphad.ops.soak", "a long run at a steady feed rate: RSS growth, journal size and ring losses checked"),
    "audit": ("alphad.ops.audit", "verify the journal's keyed chain and anchor; orders, fills, positions from it"),
    "top": ("alphad.ops.top", "live terminal view of a running daemon: state, PnL, latency, stages, positions, risk"),
    "study": ("alphad.ops.study_cli", "ablation study: variants x windows of backtests with models trained before each, on Ray"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alphad",
        description="alphad: embedded low-latency trading daemon. "
        "Run `alphad COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name in sys.argv[1:2]:  # only the chosen command imports its module
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv[1:] = argv
    parser = build_parser()
    args = parser.parse_args()
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("ALPHAD_DEBUG"):
            raise
        print(f"alphad {args.command}: error: {e}", file=sys.stderr)
        # an error may carry its own status (a refused in-sample run: 2, a usage error)
        return getattr(e, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
