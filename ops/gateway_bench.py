"""``alphad bench-gateway``: the gateway hop, router → gateway → Alpaca → exec report back.

Starts a wire-level fake Alpaca (:mod:`alphad.ops.fake_alpaca`) on loopback and a real
gateway process (``alphad gateway``) on segments of its own, then plays the router: each
order is pushed onto ``venue_orders`` as the router stage pushes it, and the clock stops
when its ACK, and then its FILL, comes back on ``venue_exec``.  The hop measured is
therefore everything a live order pays outside the hot path: the ring and the gateway's
wake-up, alpaca-py building and sending the REST request, the HTTP round trip over
loopback, the venue's answer (the ACK is the POST's response; the FILL comes from the
``trade_updates`` websocket), and the exec report's ring back.

:class:`GatewayRig` is the same set-up for the tests (tests/integration/test_alpaca_gateway.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEY, SECRET = "fake-key", "fake-secret"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--orders", type=int, default=500, help="orders to time, one at a time (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=20, help="orders sent first and not timed (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--interval-ms", type=float, default=None,
                   help="pause between orders (default: 0 for alpaca; 25 for ib, under ib_async's pacing of 45 "
                        "requests a second, which would otherwise queue orders for up to a second)")
    p.add_argument("--venue", choices=["alpaca", "ib"], default="alpaca",
                   help="alpaca: a fake Alpaca (HTTP + websockets); ib: a fake TWS (the TWS socket protocol)")
    p.add_argument("--floor", action="store_true",
                   help="also time the floor from this process: a bare HTTP POST of an order (requests) and "
                        "alpaca-py's submit_order, each to the same fake")


def terminate(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it after ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shipped_config(name: str, work: Path, prefix: str, point) -> Path:
    """``configs/<name>`` with an absolute model card, its own prefix and journal, and
    ``point(cfg)`` aiming it at a fake broker; written into ``work``."""
    cfg = msgspec.yaml.decode((REPO / "configs" / name).read_bytes())
    cfg["model"]["card"] = str(REPO / "data" / "demo_model" / "model_card.json")
    cfg["shm"]["prefix"] = prefix
    cfg["journal"]["dir"] = str(work / "journal")
    point(cfg)
    path = work / "config.yaml"
    path.write_bytes(msgspec.yaml.encode(cfg))
    return path


def alpaca_config(fake, work: Path, prefix: str, **router_alpaca) -> Path:
    """``configs/alpaca_paper.yaml`` pointed at ``fake``, with its own prefix and journal."""
    def point(cfg):
        cfg["feed"]["alpaca"].update(crypto_url_override=fake.crypto_data_url, stock_url_override=fake.stock_data_url)
        cfg["router"]["alpaca"].update(url_override=fake.trading_url, stream_url_override=fake.trading_stream_url,
                                       **router_alpaca)
    return _shipped_config("alpaca_paper.yaml", work, prefix, point)


def ib_config(fake, work: Path, prefix: str, **router_ib) -> Path:
    """``configs/ib_paper.yaml`` pointed at a fake TWS (``ops/fake_tws.py``: both the feed's
    and the gateway's connections), with its own prefix and journal."""
    def point(cfg):
        cfg["feed"]["ib"].update(host="127.0.0.1", port=fake.port)
        cfg["router"]["ib"].update(host="127.0.0.1", port=fake.port, **router_ib)
    return _shipped_config("ib_paper.yaml", work, prefix, point)


class GatewayRig:
    """A gateway process on segments of its own, with this process as its router.
    ``venue``: ``alpaca`` (``fake``: ops/fake_alpaca.py) or ``ib`` (ops/fake_tws.py)."""

    def __init__(self, fake, work: Path, *, prefix: str | None = None, venue: str = "alpaca", **router_venue):
        from alphad.daemon.config import load_config
        from alphad.daemon.shell.topology import segment_names
        from alphad.ipc import gateway_block as gb
        from alphad.ipc.doorbell import Doorbells
        from alphad.ipc.dtypes import EXEC_DTYPE, VENUE_REQ_DTYPE
        from alphad.ipc.ring import Ring

        work.mkdir(parents=True, exist_ok=True)
        self.work, self.fake = work, fake
        self.prefix = prefix or f"alphad-gw-{os.getpid()}"
        make = alpaca_config if venue == "alpaca" else ib_config
        self.config = make(fake, work, self.prefix, **router_venue)
        self.cfg, _ = load_config(str(self.config))
        names = segment_names(self.prefix)
        self.names = names
        from alphad.ipc.shm import list_segments

        for p in list_segments(self.prefix):  # a killed earlier run's (this rig owns its prefix)
            p.unlink(missing_ok=True)
        self.bells = Doorbells.create(names["doorbells"])
        self.block = gb.GatewayBlock.create(names["gateway"], len(self.cfg.universe))
        self.requests = Ring.create(names["ring.venue_orders"], VENUE_REQ_DTYPE, 1024, ["gateway"], policy="lossless",
                                    bells=self.bells, doorbell_of={"gateway": 1})
        self.replies = Ring.create(names["ring.venue_exec"], EXEC_DTYPE, 1024, ["router"], policy="lossless",
                                   bells=self.bells)
        self.proc = None
        self.log = (work / "gateway.log").open("a")

    def start(self, timeout_s: float = 60.0) -> "GatewayRig":
        from alphad.ipc import gateway_block as gb

        env = dict(os.environ, APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET)
        env.pop("ALPHAD_SUPERVISOR_PID", None)
        self.block.words[gb.G_READY] = 0
        self.proc = subprocess.Popen([sys.executable, "-m", "alphad.daemon.cli", "gateway", "--config",
                                      str(self.config), "--doorbell", "1"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self.block.words[gb.G_READY]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not become ready (exit {self.proc.poll()}):\n{self.output()}")
            time.sleep(0.01)
        return self

    def output(self) -> str:
        self.log.flush()
        return (self.work / "gateway.log").read_text()

    def kill(self) -> None:
        """SIGKILL the gateway (crash-only: it must come back whole)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def send(self, cid: int, instrument: int, side: int, qty: float, *, action: int = 1, kind: int = 0,
             limit_px: float = np.nan, tif: int = 0, known_filled: float = 0.0, orig_cid: int = 0) -> None:
        from alphad.ipc.dtypes import VENUE_REQ_DTYPE

        now = time.monotonic_ns()
        self.requests.push(np.array([(now, now, cid, instrument, side, action, kind, tif, qty, limit_px,
                                      known_filled, orig_cid)], VENUE_REQ_DTYPE))

    def reports(self) -> np.ndarray:
        return self.replies.pop(0, 1024)

    def wait_reports(self, cond, timeout_s: float = 20.0) -> list:
        """Pop reports until ``cond(all popped so far)`` holds; returns them all."""
        got: list = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got.extend(self.reports().tolist())
            if cond(got):
                return got
            time.sleep(0.002)
        raise AssertionError(f"reports expected within {timeout_s} s, got {got}\n{self.output()[-3000:]}")

    def close(self) -> None:
        from alphad.ipc.shm import list_segments

        if self.proc is not None:
            terminate(self.proc)
        self.log.close()
        for r in (self.requests, self.replies):
            r.close()
        self.block.close()
        for p in list_segments(self.prefix):
            p.unlink(missing_ok=True)


def _percentiles(ns: list[int]) -> dict:
    a = np.array(ns, dtype=np.float64) / 1e3
    return {"n": len(a), "p50_us": round(float(np.percentile(a, 50)), 1), "p99_us": round(float(np.percentile(a, 99)), 1),
            "p99.9_us": round(float(np.percentile(a, 99.9)), 1), "max_us": round(float(a.max()), 1)}


def _floor(args) -> dict:
    """What the hop cannot go below from Python: the order's HTTP round trip alone (requests,
    one kept-alive session), and alpaca-py's ``submit_order`` (its request model, JSON, the
    same session machinery), each against a fake of its own."""
    import requests
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    fake = FakeProcess("BTC/USD=60000,60001")
    try:
        s = requests.Session()
        s.headers.update({"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        client = TradingClient(KEY, SECRET, paper=True, raw_data=True, url_override=fake.trading_url)
        raw, sdk = [], []
        for k in range(args.warmup + args.orders):
            body = {"symbol": "BTC/USD", "qty": "0.001", "side": "buy" if k % 2 == 0 else "sell", "type": "market",
                    "time_in_force": "gtc", "client_order_id": f"floor-raw-{k}"}
            t0 = time.monotonic_ns()
            s.post(f"{fake.trading_url}/v2/orders", json=body).raise_for_status()
            t1 = time.monotonic_ns()
            client.submit_order(MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY if k % 2 == 0
                                                   else OrderSide.SELL, time_in_force=TimeInForce.GTC,
                                                   client_order_id=f"floor-sdk-{k}"))
            t2 = time.monotonic_ns()
            if k >= args.warmup:
                raw.append(t1 - t0)
                sdk.append(t2 - t1)
    finally:
        fake.stop()
    return {"floor_http_post": _percentiles(raw), "floor_alpaca_py_submit_order": _percentiles(sdk)}


class FakeProcess:
    """A fake broker in a process of its own (``python -m alphad.ops.fake_alpaca`` or
    ``fake_tws``), so the benchmark's own polling never competes with it for a GIL; what it
    prints (its URLs, its port) as attributes."""

    def __init__(self, *quotes: str, venue: str = "alpaca"):
        if venue == "alpaca":
            argv = [sys.executable, "-m", "alphad.ops.fake_alpaca", "--key", KEY, "--secret", SECRET, "--cash", "1e12",
                    "--tick-ms", "0"]
        else:
            argv = [sys.executable, "-m", "alphad.ops.fake_tws"]
        self.proc = subprocess.Popen(argv + [a for q in quotes for a in ("--quote", q)], stdout=subprocess.PIPE,
                                     text=True)
        self.__dict__.update(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        terminate(self.proc)


def run(args) -> int:
    import tempfile

    from alphad.ipc.dtypes import EXEC_ACK, EXEC_FILL

    fake = FakeProcess("BTC/USD=60000,60001" if args.venue == "alpaca" else "BTC=60000,60001", venue=args.venue)
    work = Path(tempfile.mkdtemp(prefix="alphad-gwbench-"))
    rig = GatewayRig(fake, work, venue=args.venue)
    ack, fill = [], []
    try:
        rig.start()
        pause = (args.interval_ms if args.interval_ms is not None else 0.0 if args.venue == "alpaca" else 25.0) / 1e3
        for k in range(args.warmup + args.orders):
            time.sleep(pause)
            cid = 1_000_000 + k
            t0 = time.monotonic_ns()
            rig.send(cid, 0, 1 if k % 2 == 0 else -1, 0.001)
            t_ack = t_fill = 0
            deadline = time.monotonic() + 10
            while not t_fill and time.monotonic() < deadline:
                for r in rig.reports():
                    if r["client_order_id"] != cid:
                        continue
                    if r["status"] == EXEC_ACK and not t_ack:
                        t_ack = time.monotonic_ns()
                    elif r["status"] == EXEC_FILL:
                        t_fill = time.monotonic_ns()
            if not t_fill:
                raise RuntimeError(f"order {cid}: no fill within 10 s\n{rig.output()[-2000:]}")
            if k >= args.warmup:
                ack.append(t_ack - t0)
                fill.append(t_fill - t0)
    finally:
        rig.close()
        fake.stop()
    floor = _floor(args) if args.floor and args.venue == "alpaca" else {}
    result = {"command": "alphad bench-gateway " + " ".join(sys.argv[2:]), "host": platform.node(),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "venue": args.venue,
              "what": ("router pushes an order on venue_orders -> gateway process (uvloop, alpaca-py) -> fake Alpaca "
                       "(own process) over loopback HTTP -> ACK (the POST's answer) / FILL (trade_updates websocket) "
                       "-> venue_exec") if args.venue == "alpaca" else
                      ("router pushes an order on venue_orders -> gateway process (uvloop, ib_async) -> fake TWS (own "
                       "process) over the TWS socket protocol on loopback -> ACK (Submitted) / FILL (execDetails and "
                       "its commissionReport) -> venue_exec"),
              "ack": _percentiles(ack), "fill": _percentiles(fill), **floor}
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


#: The demo recording's symbols as Alpaca names them, and as IB's contracts do.
DEMO_SYMBOLS = {"BTCUSDT": "BTC/USD", "ETHUSDT": "ETH/USD"}
DEMO_SYMBOLS_IB = {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}


class DemoMarket:
    """Replays the demo recording's quotes and trades into a fake Alpaca at ``speed`` times
    real time, in a thread, looping: the fake streams them to the daemon's feed and fills
    market orders at them."""

    def __init__(self, fake, *, speed: float = 5.0, path: Path = REPO / "data" / "demo_btc_eth_quotes_trades.csv.gz",
                 symbols: dict[str, str] = DEMO_SYMBOLS):
        import gzip
        import threading

        rows = []
        with gzip.open(path, "rt") as f:
            next(f)
            for line in f:
                ts, sym, kind, bp, bs, ap, asz, lp, ls = line.rstrip("\n").split(",")
                if sym in symbols:
                    rows.append((int(ts), symbols[sym], kind, bp, bs, ap, asz, lp, ls))
        self.rows, self.fake, self.speed = rows, fake, speed
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-market", daemon=True)

    def start(self) -> "DemoMarket":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            t0, w0 = self.rows[0][0], time.monotonic()
            for ts, sym, kind, bp, bs, ap, asz, lp, ls in self.rows:
                wait = (ts - t0) / 1e9 / self.speed - (time.monotonic() - w0)
                if wait > 0 and self._stop.wait(wait):
                    return
                if kind == "quote":
                    self.fake.set_quote(sym, float(bp), float(ap), float(bs), float(asz))
                else:
                    self.fake.publish_trade(sym, float(lp), float(ls))
                self.published += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
