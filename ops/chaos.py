"""``alphad chaos``: SIGKILL stages of a running daemon at random, then audit what it did.

It starts ``alphad run`` on a copy of the config (its own shm prefix, ports and journal in
a work folder), kills a random stage every ``--every`` seconds for ``--kills`` kills, timing
each kill to the moment the restarted stage is ready again, then halts, waits for the
orders in flight to end (``--drain-s``), shuts the daemon down and reads its journal:

* ``journal_ok``: the hash chain verifies;
* ``duplicate_ids``: client order ids risk approved more than once;
* ``unresolved``: approved orders with no terminal exec report (fill, cancel or reject);
* ``positions_match_fills``: risk's positions (read from its segment before shutdown) equal
  the net fills the venues reported (the journal's exec reports);
* ``kill_to_ready_ms``: p50 / max per stage.

With ``--fake-alpaca`` (a config whose ``router.venue`` is ``alpaca``, such as
configs/alpaca_paper.yaml) the daemon trades against a wire-level fake Alpaca started here
(:mod:`alphad.ops.fake_alpaca`, fed the demo recording's quotes); with ``--fake-tws`` (a
config whose ``router.venue`` is ``ib``, such as configs/ib_paper.yaml) against a fake TWS
(:mod:`alphad.ops.fake_tws`).  Then ``gateway`` may be picked among the processes killed,
and more checks are made:

* ``positions_equal_venue``: risk's positions equal the positions the fake broker holds;
* ``sent_twice``: client order ids the broker received more than once, 429 refusals apart
  (IB: and modifies sent more than once; ``modifies`` counts them, made when an algorithm
  re-prices a resting child: ``--execution twap`` sets ``router.ib.time_in_force`` gtc);
* ``venue_adjustments``: position differences the gateway booked the broker's way (nobody
  else trades the fake's account, so any would hide a fill lost or counted twice).

Prints one JSON document (also to ``--json``); exits 1 when an audit check fails.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

STAGES = ("feed", "features", "infer", "risk", "router")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs to send (default: %(default)s)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between kills (default: %(default)s)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help="comma-separated stages to pick from (default: all five; with --fake-alpaca also gateway)")
    p.add_argument("--fake-alpaca", action="store_true",
                   help="trade against a wire-level fake Alpaca started here (the config's router.venue: alpaca)")
    p.add_argument("--fake-tws", action="store_true",
                   help="trade against a wire-level fake TWS started here (the config's router.venue: ib)")
    p.add_argument("--venue-latency-us", type=float, default=None,
                   help="entry and response latency of every simulated venue, µs (default: as configured)")
    p.add_argument("--execution", choices=["immediate", "twap", "vwap", "pov"], default=None,
                   help="override router.execution (e.g. twap: parents working while stages die)")
    p.add_argument("--drain-s", type=float, default=75.0,
                   help="after the kills, seconds to wait for every order to end (default: %(default)s, "
                        "past the default algorithm horizon of 60 s)")
    p.add_argument("--horizon-s", type=float, default=None,
                   help="override router.algo.horizon_s (a short horizon lets parents end soon after the kills)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the stage picks (default: %(default)s)")
    p.add_argument("--work", default=None, help="work folder for the config copy, log and journal (default: a temp dir)")
    p.add_argument("--json", default=None, help="also write the result here")


def _die_with_parent() -> None:
    """In the daemon's process before it runs: SIGTERM it (a clean shutdown) when this
    command dies, however it dies."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shm_prefix() -> str:
    """This chaos run's daemon's shm prefix."""
    return f"alphad-chaos-{os.getpid()}"


def chaos_config(cfg_path: Path, work: Path, args) -> tuple[Path, str]:
    """The daemon's config for this run (absolute paths, own prefix, ports and journal)."""
    import msgspec

    cfg = msgspec.yaml.decode(cfg_path.read_bytes())
    base = cfg_path.parent.resolve()
    for section, key in (("feed", "path"), ("feed", "trades_path"), ("model", "card")):
        if cfg.get(section, {}).get(key):
            cfg[section][key] = str((base / cfg[section][key]).resolve())
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    if getattr(args, "fake", None) is not None and args.fake_tws:  # both IB connections to the fake
        cfg.setdefault("feed", {}).setdefault("ib", {}).update(host="127.0.0.1", port=args.fake.port)
        cfg.setdefault("router", {}).setdefault("ib", {}).update(host="127.0.0.1", port=args.fake.port,
                                                                 reconcile_interval_s=1.0, backoff_s=0.2,
                                                                 backoff_max_s=1.0)
    elif getattr(args, "fake", None) is not None:  # every Alpaca endpoint to the fake
        fake = args.fake
        cfg.setdefault("feed", {}).setdefault("alpaca", {}).update(crypto_url_override=fake.crypto_data_url,
                                                                    stock_url_override=fake.stock_data_url)
        cfg.setdefault("router", {}).setdefault("alpaca", {}).update(
            url_override=fake.trading_url, stream_url_override=fake.trading_stream_url, reconcile_interval_s=1.0,
            backoff_s=0.05)
    cfg.setdefault("shm", {})["prefix"] = shm_prefix()
    cfg.setdefault("control", {})["endpoint"] = endpoint
    cfg.setdefault("metrics", {})["port"] = _free_port()
    # its key beside the journal (work/journal.key), where the audit's verify looks for it
    cfg.setdefault("journal", {}).update(enabled=True, dir=str(work / "journal"), key_file="")
    router = cfg.setdefault("router", {})
    if args.execution:
        router["execution"] = args.execution
        if args.execution != "immediate" and router.get("venue") == "ib":
            router.setdefault("ib", {})["time_in_force"] = "gtc"  # an algorithm's children rest (IOC forbids it)
    if args.horizon_s is not None:
        router.setdefault("algo", {})["horizon_s"] = args.horizon_s
    if args.venue_latency_us is not None and getattr(args, "fake", None) is None:
        ns = int(args.venue_latency_us * 1000)
        venues = router.get("venues") or [{"name": "paper", "taker_bps": 1.0}]
        router["venues"] = [{**v, "entry": {"median_ns": ns}, "response": {"median_ns": ns}} for v in venues]
    out = work / "config.yaml"
    out.write_bytes(msgspec.yaml.encode(cfg))
    return out, endpoint


def _status(endpoint: str):
    from alphad.ipc import frames
    from alphad.ops.ctl import request

    reply = request(endpoint, frames.Status(), timeout_s=2)
    return reply if isinstance(reply, frames.StatusReply) else None


def _wait(cond, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    return None


def risk_positions(config: Path) -> np.ndarray:
    """The risk stage's positions, read from its ``risk_state`` segment."""
    from alphad.daemon.config import load_config
    from alphad.daemon.shell.risk_view import RiskView
    from alphad.daemon.shell.topology import segment_names

    cfg, _ = load_config(str(config))
    held = RiskView(segment_names(cfg.shm.prefix)["risk_state"], cfg).positions()
    if held is None:
        raise RuntimeError(f"risk's book was not found in shared memory (shm.prefix {cfg.shm.prefix!r})")
    return held


def journal_positions(journal: Path, n: int) -> np.ndarray:
    """Net filled quantity per instrument, from the venue's exec reports in the journal."""
    from alphad.daemon.supervisor.journal import entries

    pos = np.zeros(n)
    for e in entries(journal):
        if e["type"] == "exec" and e["fill_qty"] > 0:
            pos[e["instrument"]] += e["side"] * e["fill_qty"]
    return pos


def audit(journal: Path) -> dict:
    """The journal's checks: chain, duplicated ids, approved orders with no terminal report."""
    from alphad.daemon.supervisor.journal import entries, last_run, verify

    _, bad = verify(journal)
    orders, fills = [], 0
    for e in entries(journal):
        if e["type"] == "order":
            orders.append(e["client_order_id"])
        elif e["type"] == "exec":
            fills += e["fill_qty"] > 0
    dup = sum(c - 1 for c in Counter(orders).values() if c > 1)
    unresolved = sorted({o["client_order_id"] for o in last_run(journal)[1]})
    return {"journal_ok": bad is None, "first_bad_line": bad, "orders": len(orders), "fills": fills,
            "duplicate_ids": dup, "unresolved": len(unresolved), "unresolved_ids": unresolved[:20]}


def _pid(st, name: str) -> int:
    return st.venue.pid if name == "gateway" else st.stages[name].pid


def _ready(st, name: str) -> bool:
    return st.venue.ready if name == "gateway" else st.stages[name].ready


def venue_check(fake, config: Path, held: np.ndarray) -> dict:
    """Risk's positions against the fake broker's, and the ids it received more than once
    (but for retries of requests it refused with 429: nothing was created)."""
    from alphad.daemon.config import load_config
    from alphad.daemon.supervisor.journal import entries

    cfg, _ = load_config(str(config))
    # the orders the halt cancelled end at the broker, then their reports reach risk
    tws = hasattr(fake, "place_counts")
    working = ("PreSubmitted", "Submitted") if tws else ("new", "accepted", "partially_filled")
    _wait(lambda: not [o for o in fake.orders() if o["status"] in working], 30, 0.2)
    theirs = {f"{s}/USD" if tws else s: q for s, q in fake.positions().items()}
    venue = np.array([theirs.get(i.symbol, 0.0) for i in cfg.universe])
    modifies = {}
    if tws:  # IB has no 429: every order reference is placed once, every modify sent once
        refused, counts, modifies = 0, fake.place_counts, fake.modify_counts
    else:
        refused = sum(1 for m, p, st in fake.request_log if m == "POST" and p == "/v2/orders" and st == 429)
        counts = fake.post_counts
    repeats = sum(counts.values()) - len(counts)
    return {"positions_equal_venue": bool(np.allclose(held, venue, rtol=1e-9, atol=1e-9)),
            # nobody trades the account but alphad here: any difference booked the broker's way
            # (client order id 0) would be a fill lost or counted twice, papered over
            "venue_adjustments": sum(1 for e in entries(config.parent / "journal" / "journal.jsonl")
                                     if e["type"] == "exec" and e["client_order_id"] == 0),
            "venue_positions": {i.symbol: float(q) for i, q in zip(cfg.universe, venue)},
            "orders_at_venue": len(counts), "modifies": sum(modifies.values()),
            "sent_twice": repeats - refused + sum(modifies.values()) - len(modifies)}


def run(args) -> int:
    from alphad.daemon.supervisor.journal import last_run
    from alphad.ipc import frames
    from alphad.ops.ctl import request

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    allowed = STAGES + (("gateway",) if args.fake_alpaca or args.fake_tws else ())
    unknown = sorted(set(stages) - set(allowed))
    if unknown or not stages:
        raise ValueError(f"--stages expected names among {list(allowed)}, was {args.stages!r}")
    fake = market = None
    env = dict(os.environ)
    if args.fake_alpaca:
        from alphad.ops.fake_alpaca import FakeAlpaca
        from alphad.ops.gateway_bench import KEY, SECRET, DemoMarket

        # --venue-latency-us: the broker's delay before it fills (orders in flight while processes die)
        fake = FakeAlpaca(key=KEY, secret=SECRET, fill_delay_s=(args.venue_latency_us or 0) / 1e6).start()
        market = DemoMarket(fake, speed=5.0).start()
        env.update(APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET)
    elif args.fake_tws:
        from alphad.ops.fake_tws import FakeTWS
        from alphad.ops.gateway_bench import DEMO_SYMBOLS_IB, DemoMarket

        fake = FakeTWS(fill_delay_s=(args.venue_latency_us or 0) / 1e6).start()
        market = DemoMarket(fake, speed=5.0, symbols=DEMO_SYMBOLS_IB).start()
    args.fake = fake
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="alphad-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    if (work / "journal" / "journal.jsonl").exists():
        raise ValueError(f"--work expected a fresh folder, but {work / 'journal'} holds an earlier run's journal")
    config, endpoint = chaos_config(Path(args.config), work, args)
    log = (work / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=work, preexec_fn=_die_with_parent, env=env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed chaos run still cleans up below
    rng = random.Random(args.seed)
    times: dict[str, list[float]] = {s: [] for s in stages}
    lost = []
    try:
        if not _wait(lambda: (st := _status(endpoint)) and all(x.ready for x in st.stages.values())
                     and (st.venue is None or st.venue.ready), 300, 0.2):
            raise RuntimeError(f"the daemon was not ready within 300 s; see {work / 'daemon.log'}")
        for k in range(args.kills):
            time.sleep(args.every)
            stage = rng.choice(stages)
            # a pid, never 0 (a process being restarted: kill(0) would take this process group)
            st = _wait(lambda: (st := _status(endpoint)) and _pid(st, stage) > 0 and st, 120)
            if not st:
                raise RuntimeError(f"{stage} had no process for 120 s; see {work / 'daemon.log'}")
            old = _pid(st, stage)
            os.kill(old, signal.SIGKILL)
            t0 = time.monotonic()
            back = _wait(lambda: (st := _status(endpoint)) and _ready(st, stage) and _pid(st, stage) not in (0, old),
                         120)
            if back:
                times[stage].append((time.monotonic() - t0) * 1e3)
            else:
                lost.append(stage)
            print(f"chaos: kill {k + 1}/{args.kills}: {stage} (pid {old}) "
                  + (f"ready again after {times[stage][-1]:.0f} ms" if back else "NOT back within 120 s"),
                  file=sys.stderr, flush=True)
        request(endpoint, frames.Halt(reason="chaos: end"), timeout_s=5)
        # let what is in flight end (an algorithm's parents run to their horizon): until every
        # approved order has its end in the journal, or --drain-s
        journal = work / "journal" / "journal.jsonl"
        _wait(lambda: journal.exists() and not last_run(journal)[1], args.drain_s, 0.5)
        time.sleep(0.1)  # the journal thread's last drain (every 5 ms)
        held = risk_positions(config)
        filled = journal_positions(journal, len(held))
        venue = venue_check(fake, config, held) if fake is not None else {}
        request(endpoint, frames.Shutdown(), timeout_s=5)
        proc.wait(timeout=60)
    finally:
        if market is not None:
            market.stop()
            fake.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            from alphad.ipc.shm import list_segments

            for seg in list_segments(shm_prefix()):  # a SIGKILLed daemon leaves its segments
                seg.unlink(missing_ok=True)
        log.close()
    result = {"kills": args.kills, "every_s": args.every, "stages": stages, "seed": args.seed,
              "execution": args.execution or "as configured", "venue_latency_us": args.venue_latency_us,
              "horizon_s": args.horizon_s,
              "not_back": lost, "work": str(work),
              "kill_to_ready_ms": {s: {"n": len(v), "p50": round(float(np.median(v)), 1), "max": round(max(v), 1)}
                                   for s, v in times.items() if v},
              "positions_match_fills": bool(np.allclose(held, filled, rtol=1e-9, atol=1e-9)),
              "position_mismatch": {int(i): [float(held[i]), float(filled[i])]
                                    for i in np.flatnonzero(~np.isclose(held, filled, rtol=1e-9, atol=1e-9))},
              **venue, **audit(work / "journal" / "journal.jsonl")}
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    ok = (result["journal_ok"] and not result["duplicate_ids"] and not result["unresolved"] and not lost
          and result["positions_match_fills"] and result.get("positions_equal_venue", True)
          and not result.get("sent_twice") and not result.get("venue_adjustments"))
    return 0 if ok else 1
