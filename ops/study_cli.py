"""``alphad study``: an ablation study of the system's enhancements (``studies/seed_claims.yaml``).

Every variant x window is a backtest through the daemon's own cores with a model the research
pipeline trained before the window (:mod:`alphad.ops.study.tasks`), run as Ray tasks (local
by default; ``--address`` joins a cluster) or serially in this process (``--serial``).  Results
are cached under ``OUT/cache`` by the hash of everything that determines them, so a re-run
computes only what changed.  Then the statistics (:mod:`alphad.ops.study.stats`) and the
report (:mod:`alphad.ops.study.report`): ``OUT/results.json`` and the study's markdown report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import msgspec


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="the study file (e.g. studies/seed_claims.yaml)")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder: cache/ (models and backtests, reused by the next run) and results.json")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (e.g. ray://head:10001 or auto); default: start Ray on this machine")
    p.add_argument("--workers", type=int, default=None,
                   help="CPUs of the local Ray (default: every core); each task takes one")
    p.add_argument("--serial", action="store_true", help="run every task in this process, one after another, no Ray")
    p.add_argument("--report", type=Path, default=None,
                   help="the markdown report to write (default: the study file's `report`; its PNGs go beside it)")
    p.add_argument("--no-report", action="store_true", help="compute and cache everything, write results.json only")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from alphad.ops.study import runner, stats, tasks
    from alphad.ops.study.spec import StudyError, load

    if args.serial and (args.address or args.workers):
        print("alphad study: --serial runs no Ray; drop --address/--workers", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"alphad study: --workers expected a positive number, found {args.workers}", file=sys.stderr)
        return 2
    try:
        study, base = load(args.config)
        code = tasks.code_digest()
        plan = runner.plan(study, base, args.out.resolve() / "cache", code=code)
    except (StudyError, ValueError, OSError) as e:
        print(f"alphad study: {e}", file=sys.stderr)
        return 2
    intraday_todo = bool(study.intraday)
    n_tasks = len(plan.models) + len(plan.backtests) + intraday_todo
    progress = runner.Progress(n_tasks, quiet=args.quiet)
    t0 = time.perf_counter()
    if not args.quiet:
        how = "serially" if args.serial else f"on Ray ({args.address or 'local'})"
        print(f"[study] {study.name}: {len(study.all_variants())} variants x {len(study.windows)} windows: "
              f"{len(plan.models)} models, {len(plan.backtests)} backtests{' + intraday' if intraday_todo else ''}, "
              f"{how}; cache {args.out / 'cache'}", file=sys.stderr)
    try:
        if args.serial:
            models, runs = runner.run_serial(plan, progress)
        else:
            models, runs = runner.run_ray(plan, progress, address=args.address, workers=args.workers)
        intraday = None
        if intraday_todo:
            from alphad.ops.study import intraday_claims

            intraday = intraday_claims.measure(study, base, args.out.resolve() / "cache", code)
            progress("intraday (Binance capture)", intraday)
    except RuntimeError as e:
        print(f"alphad study: {e}", file=sys.stderr)
        return 1
    summary = stats.summarise(study, plan, models, runs)
    # a backtest of a refused model is not run (it has no backtest_s): not computed either
    computed = sum(1 for r in [*models.values(), *runs.values(), *([intraday] if intraday else [])]
                   if not r.get("cached") and any(k in r for k in ("train_s", "backtest_s", "wall_s")))
    wall = time.perf_counter() - t0
    results = {"study": study.name, "code": code, "wall_s": round(wall, 1), "computed": computed,
               "tasks": n_tasks, "executor": "serial" if args.serial else "ray",
               "figures": {f"{v}@{w}": f for (v, w), f in summary["figures"].items()},
               "claims": [{"name": r["claim"].name, "verdict": r["verdict"], "windows": r["windows"]}
                          for r in summary["claims"]],
               "vs_baseline": summary["vs_baseline"],
               "dsr": summary["dsr"], "pbo": {k: v for k, v in (summary["pbo"] or {}).items() if k != "logits"},
               "intraday": intraday}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(tasks.finite(msgspec.to_builtins(results)), indent=1,
                                                      sort_keys=True) + "\n")
    report_path = args.report or ((base / study.report).resolve() if study.report else None)
    if report_path is not None and not args.no_report:
        from alphad.ops.study import report

        workers = f"{args.workers} workers" if args.workers else "every core"
        report.write(Path(report_path), study, summary, intraday=intraday, header={
            "command": "alphad study " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["study"]
            else f"alphad study --config {args.config} --out {args.out}",
            "date": datetime.date.today().isoformat(), "code": code, "wall_s": wall,
            "executor": "serially" if args.serial else f"on Ray ({args.address or 'local, ' + workers})",
            "computed": computed, "tasks": n_tasks})
    if not args.quiet:
        print(f"[study] done in {wall:.0f} s: {computed} of {n_tasks} tasks computed; {args.out / 'results.json'}"
              + (f"; report {report_path}" if report_path and not args.no_report else ""), file=sys.stderr)
    return 0
