"""alphad's backtest beside hftbacktest and NautilusTrader on the same Binance events.

``.venv/bin/python -m alphad.ops.bench_peers [--rounds 5] [--peers-dir /tmp/peers] [--json OUT]``

The events: the 93,078 BTCUSDT events of the Binance capture in ``../shared/data/l2``
(73,174 book-ticker quotes + 19,904 trades, merged as alphad's ``binance`` loader merges
them).  The peer scripts live in ``../shared/bench/peers`` (its README.md says what each
job does); this command

1. sets up, once, everything under ``--peers-dir`` (each step skipped when its result is
   already there): one virtual environment per peer with the pinned version
   (``hbt``: hftbacktest 2.4.4, ``nt``: nautilus-trader 1.221.0; never in alphad's own
   ``.venv``), then the shared event files: ``data/l2_btc.npz`` (``prep_data.py``),
   ``data/hbt_l2_btc.npz`` (``hbt_convert.py``) and ``data/l2_btc.csv.gz`` (alphad's
   generic CSV, ``to_generic_csv.py``), and ``alphad_bench.yaml``: config.yaml with the
   feed on that CSV (``format: generic``, ``loop: false``) and ``model.runtime: compiled``;
2. runs, in each of ``--rounds`` interleaved rounds (the job order rotates by one each
   round), six jobs, each in its own process:

   * alphad, full pipeline: ``alphad backtest --config alphad_bench.yaml``, the daemon's
     own stage cores (feed, features, the demo model per quote, risk gate, router and
     paper venue) one event per step in the compiled loop (the summary must say
     ``"loop": "compiled"``);
   * alphad, replay only: the backtest's process with the market alone going through it
     (``--replay-only``): per event, the feed's step and publish, the paper venues' books and
     trade tape, the portfolio's marks, one event per step in one ``@njit`` loop; no
     features, model, gate or orders (the peers' replay job: their own dispatch and books);
   * hftbacktest and NautilusTrader, each ``--mode strategy`` (the README's toy strategy
     with its orders) and ``--mode replay`` (no strategy: the engine's own cost);

3. prints a markdown table: events/s as the median of the rounds with the min–max, and the
   orders each job sent.  events/s is events over the replay's wall time as each tool
   reports it: loading, conversion, start-up and JIT compiling are excluded.

``--json OUT`` writes every round's figures, the versions and the host.  Progress goes to
stderr, the table to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from alphad.daemon.feed.core import CUR_POS, feed_step
from alphad.daemon.risk.core import risk_marks
from alphad.daemon.router.core import router_on_md
from alphad.daemon.shell.tick import publish

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO.parent / "shared" / "bench" / "peers"
CONFIG = REPO / "config.yaml"
MODEL_CARD = REPO / "data" / "demo_model" / "model_card.json"

#: venv name -> (packages to install, {distribution: pinned version} that must be present)
PEER_VENVS = {
    "hbt": (["hftbacktest==2.4.4", "pandas"], {"hftbacktest": "2.4.4"}),
    "nt": (["nautilus-trader==1.221.0"], {"nautilus_trader": "1.221.0"}),
}
#: what each venv's versions line reports
VERSION_DISTS = {
    "hbt": ["hftbacktest", "numba", "numpy", "pandas", "polars"],
    "nt": ["nautilus_trader", "numpy", "pandas"],
}

#: (key, system, job): the table's rows, in order
JOBS = [
    ("alphad_full", "alphad", "full pipeline"),
    ("alphad_replay", "alphad", "replay only"),
    ("hbt_strategy", "hftbacktest", "strategy"),
    ("hbt_replay", "hftbacktest", "replay"),
    ("nt_strategy", "NautilusTrader", "strategy"),
    ("nt_replay", "NautilusTrader", "replay"),
]

NOTES = [
    "alphad full pipeline: `alphad backtest` (compiled loop), one event per step through the daemon's own "
    "feed, features, demo model (60 trees, per quote), risk gate, router and paper venue.",
    "alphad replay only: the backtest's process with no strategy, one event per step: the feed's step, "
    "the paper venues' books and trade tape, the portfolio's marks (no features, model, gate or orders).",
    "hftbacktest / NautilusTrader strategy: the toy strategy of ../shared/bench/peers/README.md with "
    "MARKET (IOC) orders of 0.05 BTC; replay: no strategy, the engine's own event dispatch and books.",
    "events/s = source events / the replay's wall time as each tool reports it (loading, conversion and "
    "JIT excluded); median of the rounds (min-max).",
]


class BenchError(Exception):
    """A failure this command explains in one message (no traceback)."""


def log(msg: str) -> None:
    print(f"[bench_peers] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure parts


def median_range(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a job's per-round figures."""
    if not values:
        raise ValueError("no value to summarise")
    return statistics.median(values), min(values), max(values)


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def fmt_orders(values: list[int | None]) -> str:
    """The orders a job sent: one number when every round agrees, else the range; '—' for none."""
    vs = [v for v in values if v is not None]
    if not vs:
        return "—"
    lo, hi = min(vs), max(vs)
    if hi == 0:
        return "0"
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def summarise(rounds: list[dict]) -> list[dict]:
    """One row per job (in :data:`JOBS` order) from the per-round records
    (``{"job", "events_per_s", "orders", ...}``)."""
    rows = []
    for key, system, job in JOBS:
        rs = [r for r in rounds if r["job"] == key]
        if not rs:
            continue
        med, lo, hi = median_range([r["events_per_s"] for r in rs])
        rows.append(dict(job=key, system=system, name=job, rounds=len(rs), events_per_s_median=med,
                         events_per_s_min=lo, events_per_s_max=hi, events=rs[0]["events"],
                         orders=[r["orders"] for r in rs]))
    return rows


def markdown_table(rows: list[dict]) -> str:
    out = ["| system | job | events/s, median (min–max) | orders |", "|---|---|---:|---:|"]
    for r in rows:
        rate = f"{fmt_rate(r['events_per_s_median'])} ({fmt_rate(r['events_per_s_min'])}–" \
               f"{fmt_rate(r['events_per_s_max'])})"
        out.append(f"| {r['system']} | {r['name']} | {rate} | {fmt_orders(r['orders'])} |")
    return "\n".join(out)


def alphad_config(base: dict, csv_path: Path, model_card: Path = MODEL_CARD) -> dict:
    """config.yaml's mapping with the feed on the generic CSV (whole file once) and the
    model compiled, so ``alphad backtest`` runs its compiled loop.  The universe is kept."""
    cfg = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    feed = cfg.setdefault("feed", {})
    feed.update(source="replay", path=str(Path(csv_path).resolve()), format="generic", loop=False)
    feed.pop("trades_path", None)
    model = cfg.setdefault("model", {})
    model.update(card=str(Path(model_card).resolve()), runtime="compiled")
    if model.get("provider") == "cuda":  # runtime compiled runs on the CPU
        model["provider"] = "auto"
    return cfg


def peer_command(key: str, peers: Path, run_json: Path, source_events: int) -> list[str]:
    """The subprocess of one peer job (``hbt_*`` or ``nt_*``)."""
    mode = key.split("_", 1)[1]
    if key.startswith("hbt_"):
        return [str(venv_python(peers, "hbt")), str(SCRIPTS / "hbt_run.py"), str(peers / "data" / "hbt_l2_btc.npz"),
                "--mode", mode, "--source-events", str(source_events), "--json", str(run_json)]
    return [str(venv_python(peers, "nt")), str(SCRIPTS / "nt_run.py"), str(peers / "data" / "l2_btc.npz"),
            "--mode", mode, "--json", str(run_json)]


def venv_python(peers: Path, name: str) -> Path:
    return peers / name / "bin" / "python"


def parse_json_stdout(text: str) -> dict:
    """The JSON document a command printed (the first line that opens one, to the end)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            return json.loads("\n".join(lines[i:]))
    raise ValueError("no JSON document in the output")


# ---------------------------------------------------------------- setup


def _tail(text: str, n: int = 15) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and "is ignored: it is neither a file nor" not in ln]
    return "\n".join("    " + ln for ln in lines[-n:])


def _peer_env(peers: Path) -> dict:
    """The peers' scripts run with their Numba cache and bytecode kept out of ../shared."""
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(peers / "numba-cache")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def installed_versions(python: Path, dists: list[str]) -> dict[str, str | None]:
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(d):\n"
            "    try:\n        return m.version(d)\n"
            "    except m.PackageNotFoundError:\n        return None\n"
            "print(json.dumps({d: v(d) for d in sys.argv[1:]}))")
    p = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True)
    if p.returncode != 0:
        return {d: None for d in dists}
    return json.loads(p.stdout)


def setup_venv(peers: Path, name: str) -> dict[str, str | None]:
    packages, pins = PEER_VENVS[name]
    venv = peers / name
    py = venv_python(peers, name)
    retry = f"{sys.executable} -m venv {venv} && {venv}/bin/pip install {' '.join(packages)}"
    if py.exists() and installed_versions(py, list(pins)) == pins:
        log(f"venv {venv}: {', '.join(f'{d} {v}' for d, v in pins.items())} already installed (skipped)")
        return installed_versions(py, VERSION_DISTS[name])
    if not py.exists():
        log(f"venv {venv}: creating")
        p = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"creating the virtual environment {venv} failed (exit {p.returncode}):\n"
                             f"{_tail(p.stdout + p.stderr)}\nretry: {retry}")
    log_path = peers / f"{name}-install.log"
    log(f"venv {venv}: pip install {' '.join(packages)} (log: {log_path})")
    with open(log_path, "w") as f:
        p = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", *packages],
                           stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise BenchError(f"pip install {' '.join(packages)} into {venv} failed (exit {p.returncode}); "
                         f"last lines of {log_path}:\n{_tail(log_path.read_text())}\n"
                         f"retry: {retry}\n(or rerun this command: it skips what is already in place)")
    got = installed_versions(py, list(pins))
    if got != pins:
        raise BenchError(f"after pip install, {venv} has {got}, expected {pins}; retry: {retry}")
    return installed_versions(py, VERSION_DISTS[name])


def _run_step(what: str, cmd: list[str], peers: Path) -> str:
    log(f"{what}: {shlex.join(cmd)}")
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=peers, env=_peer_env(peers))
    if p.returncode != 0:
        raise BenchError(f"{what} failed (exit {p.returncode}):\n{_tail(p.stdout + p.stderr)}\n"
                         f"command: {shlex.join(cmd)}\n(rerun this command: it skips what is already in place)")
    return p.stdout


def setup_data(peers: Path) -> dict:
    """The shared event files under ``peers/data`` (each made once) and their event counts."""
    import numpy as np

    data = peers / "data"
    data.mkdir(parents=True, exist_ok=True)
    hbt = str(venv_python(peers, "hbt"))
    merged, hbt_ev, csv = data / "l2_btc.npz", data / "hbt_l2_btc.npz", data / "l2_btc.csv.gz"
    if merged.exists() and (data / "l2_btceth.npz").exists():
        log(f"{merged}: present (skipped)")
    else:
        tmp = data / ".prep-tmp"
        tmp.mkdir(exist_ok=True)
        _run_step("prep_data.py", [hbt, str(SCRIPTS / "prep_data.py"), str(tmp)], peers)
        for f in ("l2_btceth.npz", "l2_btc.npz"):  # l2_btc.npz last: it marks the step done
            (tmp / f).replace(data / f)
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    for script, out, tmp_name in (("hbt_convert.py", hbt_ev, "hbt_l2_btc.tmp.npz"),
                                  ("to_generic_csv.py", csv, "l2_btc.tmp.csv.gz")):
        if out.exists():
            log(f"{out}: present (skipped)")
            continue
        tmp = data / tmp_name  # renamed when complete: a killed step is redone, never half-used
        _run_step(script, [hbt, str(SCRIPTS / script), str(merged), str(tmp)], peers)
        tmp.replace(out)
    with np.load(merged) as d:
        kind = d["kind"]
        counts = dict(events=int(len(kind)), quotes=int((kind == 0).sum()), trades=int((kind == 1).sum()))
    return dict(counts, merged=str(merged), hbt_events=str(hbt_ev), generic_csv=str(csv))


def write_alphad_config(peers: Path, csv: Path) -> Path:
    import yaml

    from alphad.daemon.config import decode_config

    if not CONFIG.exists():
        raise BenchError(f"alphad's config {CONFIG} was not found")
    cfg = alphad_config(yaml.safe_load(CONFIG.read_text()), csv)
    text = yaml.safe_dump(cfg, sort_keys=False)
    out = peers / "alphad_bench.yaml"
    try:
        decode_config(text, source=str(out))
    except ValueError as e:
        raise BenchError(f"the generated alphad config does not load: {e}") from None
    out.write_text("# generated by alphad.ops.bench_peers from config.yaml (feed on the Binance events, "
                   "model.runtime compiled)\n" + text)
    log(f"alphad config: {out}")
    return out


def setup(peers: Path) -> dict:
    if not SCRIPTS.is_dir():
        raise BenchError(f"the peer scripts' folder {SCRIPTS} is missing (expected beside the repository, "
                         f"as ../shared/bench/peers: prep_data.py, hbt_convert.py, hbt_run.py, nt_run.py, "
                         f"to_generic_csv.py)")
    missing = [f for f in ("prep_data.py", "hbt_convert.py", "hbt_run.py", "nt_run.py", "to_generic_csv.py")
               if not (SCRIPTS / f).is_file()]
    if missing:
        raise BenchError(f"{SCRIPTS} lacks {', '.join(missing)}")
    l2 = REPO.parent / "shared" / "data" / "l2"
    if not (l2 / "binance_spot_book_ticker.csv.gz").is_file():
        raise BenchError(f"the Binance capture {l2}/binance_spot_book_ticker.csv.gz is missing (prep_data.py reads it)")
    try:
        peers.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"cannot create the peers directory {peers}: {e}") from None
    versions = {name: setup_venv(peers, name) for name in PEER_VENVS}
    data = setup_data(peers)
    cfg = write_alphad_config(peers, Path(data["generic_csv"]))
    return dict(versions=versions, data=data, alphad_config=str(cfg))


# ---------------------------------------------------------------- the jobs


def run_job(key: str, peers: Path, cfg: Path, source_events: int, run_json: Path) -> dict:
    """One job in its own process; returns ``{"events", "replay_s", "events_per_s", "orders", "raw"}``."""
    env = None
    if key == "alphad_full":
        exe = Path(sys.executable).with_name("alphad")
        head = [str(exe)] if exe.exists() else [sys.executable, "-m", "alphad.daemon.cli"]
        cmd = [*head, "backtest", "--config", str(cfg)]
    elif key == "alphad_replay":
        cmd = [sys.executable, "-m", "alphad.ops.bench_peers", "--replay-only", str(cfg), "--json", str(run_json)]
    else:
        cmd = peer_command(key, peers, run_json, source_events)
        env = _peer_env(peers)
    run_json.unlink(missing_ok=True)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=peers, env=env)
    if p.returncode != 0:
        raise BenchError(f"job {key} failed (exit {p.returncode}):\n{_tail(p.stdout + p.stderr)}\n"
                         f"command: {shlex.join(cmd)}")
    try:
        raw = parse_json_stdout(p.stdout) if key == "alphad_full" else json.loads(run_json.read_text())
    except (ValueError, OSError) as e:
        raise BenchError(f"job {key} gave no JSON result ({e}); command: {shlex.join(cmd)}\n"
                         f"{_tail(p.stdout + p.stderr)}") from None
    if key == "alphad_full":
        if raw.get("loop") != "compiled":
            raise BenchError(f"alphad backtest ran its {raw.get('loop')!r} loop, not the compiled one "
                             f"(model.runtime compiled and router.execution immediate are needed); "
                             f"command: {shlex.join(cmd)}")
        events, replay_s, orders = raw["events"], raw["replay_s"], raw["orders"]
    elif key.startswith("hbt_"):
        events, replay_s, orders = raw["source_events"] or source_events, raw["replay_s"], raw["orders"]
    else:  # alphad_replay, nt_*
        events, replay_s, orders = raw["events"], raw["replay_s"], raw.get("orders", 0)
    # alphad's summary rounds replay_s to the ms; its events_per_s is from the unrounded time
    rate = raw["events_per_s"] if key == "alphad_full" and raw.get("events_per_s") else events / replay_s
    return dict(events=int(events), replay_s=float(replay_s), events_per_s=float(rate),
                orders=int(orders), command=shlex.join(cmd), raw=raw)


def rounds_order(r: int) -> list[str]:
    """Round ``r``'s (0-based) job order: :data:`JOBS` rotated by ``r``."""
    keys = [k for k, _, _ in JOBS]
    s = r % len(keys)
    return keys[s:] + keys[:s]


# ---------------------------------------------------------------- alphad replay only (--replay-only)


@njit(cache=True)
def market_replay(fd, md, r, rs):
    """The events of the feed's current chunk through the engine with no strategy, one at a
    time on its own clock, as ``backtest_events`` moves them: the feed's step and its
    publish (stamps, counts), the paper venues' books and trade tape, the portfolio's marks."""
    events, n = fd.events, 0
    while fd.cursor[CUR_POS] < events.shape[0]:
        now = events[fd.cursor[CUR_POS]].ts_exch
        feed_step(fd, 1, md.recs, now, now)
        publish(md, 1, 0, now)
        router_on_md(r, md.recs, 1, now)
        risk_marks(rs, md.recs, 1)
        n += 1
    return n


def replay_only(cfg_path: str) -> dict:
    """The alphad replay-only job: the backtest's own process (``single_process``: every
    stage built and warmed, the feed streaming its file in chunks), then the market alone
    through it (:func:`market_replay`); loading the chunks is excluded, as in the backtest."""
    from alphad.daemon.config import load_config
    from alphad.daemon.jit import bind
    from alphad.daemon.shell.backtest import single_process

    t = time.perf_counter()
    cfg, base = load_config(cfg_path)
    with single_process(cfg, base) as (runner, _control, _metrics):
        a = runner.adapters
        feed, md, r, rs = a["feed"], runner.ports["md"], a["router"].core.state, a["risk"].state
        loop = bind(market_replay, feed.core.state, md, r, rs)
        setup_s = time.perf_counter() - t
        t, n = time.perf_counter(), 0
        while not feed.core.exhausted or feed.next_chunk():
            n += loop(feed.core.state, md, r, rs)
        replay_s = time.perf_counter() - t - feed.load_s
        books = a["router"].core.smart.books
    if n == 0 or not np.isfinite(books[0, :, 0, 0]).any():
        raise BenchError(f"the market replay moved {n} events and left the venue's books empty")
    return dict(system="alphad", mode="replay only", measures="feed step, venue books and tape, portfolio marks; "
                "one event per step, no strategy", events=int(n), orders=0, load_s=feed.load_s, jit_s=setup_s,
                replay_s=replay_s, events_per_s=n / replay_s)


# ---------------------------------------------------------------- main


def host_line() -> str:
    try:
        from alphad.ops.bench import host_description
        host = host_description()
    except Exception:  # noqa: BLE001 (the host line is informative only)
        import platform
        host = f"{platform.node()} | {os.cpu_count()} cpus | Python {platform.python_version()}"
    return host


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m alphad.ops.bench_peers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the six jobs (default: %(default)s)")
    p.add_argument("--peers-dir", type=Path, default=Path("/tmp/peers"),
                   help="where the peer venvs, the event files and the per-round results go; created and "
                        "filled on first use, reused after (default: %(default)s)")
    p.add_argument("--json", default=None, metavar="OUT", help="write every round's figures, the versions and "
                   "the host here")
    p.add_argument("--setup-only", action="store_true", help="set up the venvs and event files, run no job")
    p.add_argument("--replay-only", default=None, metavar="CONFIG",
                   help="internal: run the alphad replay-only job once on CONFIG (what each round starts as a "
                        "subprocess) and write its JSON to --json")
    return p


def run(args, argv: list[str]) -> int:
    if args.replay_only:
        r = replay_only(args.replay_only)
        print(json.dumps(r))
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=1))
        return 0
    if args.rounds < 1:
        raise BenchError(f"--rounds must be at least 1, was {args.rounds}")
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    command = shlex.join([".venv/bin/python", "-m", "alphad.ops.bench_peers", *argv])
    peers = args.peers_dir.resolve()
    st = setup(peers)
    data = st["data"]
    if data["events"] != 93_078:
        log(f"note: {data['merged']} holds {data['events']} events (the README's capture has 93,078)")
    versions = dict(st["versions"])
    versions["alphad"] = installed_versions(Path(sys.executable), ["alphad", "numba", "numpy", "onnxruntime"])
    if args.setup_only:
        log("setup done")
        return 0
    runs = peers / "runs"
    runs.mkdir(exist_ok=True)
    load_before = os.getloadavg()
    records = []
    for r in range(args.rounds):
        for key in rounds_order(r):
            system, job = next((s, j) for k, s, j in JOBS if k == key)
            res = run_job(key, peers, Path(st["alphad_config"]), data["events"], runs / f"r{r + 1}_{key}.json")
            if res["events"] != data["events"]:
                log(f"note: {system} {job} reported {res['events']} events, the file holds {data['events']}")
            records.append(dict(round=r + 1, job=key, system=system, name=job, **res))
            log(f"round {r + 1}/{args.rounds} {system} {job}: {fmt_rate(res['events_per_s'])} events/s "
                f"({res['events']:,} events in {res['replay_s']:.3f} s, {res['orders']:,} orders)")
    load_after = os.getloadavg()
    rows = summarise(records)
    wall_s = time.perf_counter() - t_start
    host = host_line()
    vs = "; ".join(f"{name}: " + ", ".join(f"{d} {v}" for d, v in v_.items() if v) for name, v_ in versions.items())
    print(f"alphad backtest beside hftbacktest and NautilusTrader: {data['events']:,} BTCUSDT events "
          f"({data['quotes']:,} quotes + {data['trades']:,} trades, ../shared/data/l2), "
          f"{args.rounds} interleaved rounds\n")
    print(markdown_table(rows))
    print()
    for n in NOTES:
        print(f"- {n}")
    print(f"\nHost: {host}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"Versions: {vs}")
    print(f"Command: `{command}` (started {started}, {wall_s:.0f} s in all)")
    if args.json:
        doc = dict(command=command, started=started, wall_s=wall_s, host=host, load_before=load_before,
                   load_after=load_after, versions=versions, data=data, alphad_config=st["alphad_config"],
                   notes=NOTES, summary=rows, rounds=records)
        Path(args.json).write_text(json.dumps(doc, indent=1))
        log(f"per-round figures: {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except BenchError as e:
        print(f"bench_peers: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
