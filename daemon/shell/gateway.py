"""``alphad gateway``: one live venue's gateway process (started and supervised by ``alphad run``).

Network I/O never shares a process with a hot-path stage: a Numba wait holds the GIL, so
an asyncio client beside it would starve.  This process has no compiled loop at all: a
uvloop event loop runs the venue's SDK (:mod:`alphad.daemon.router.venues.alpaca`,
:mod:`~alphad.daemon.router.venues.ib`), and
one thread waits on the process's doorbell for the router's requests (ring
``venue_orders``) and hands each batch to the loop.  Exec reports go back on ring
``venue_exec``.  The wait is a futex syscall made through ctypes, which releases the GIL,
so the loop runs while the thread sleeps.

Crash-only: the order table lives in the gateway segment (:mod:`alphad.ipc.gateway_block`);
before it reports READY the gateway asks the venue about every order the table holds open.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import signal
import sys
import threading
import time

import numpy as np

from alphad.daemon.config import load_config
from alphad.daemon.shell.risk_view import RiskView
from alphad.daemon.shell.stage_main import die_with_supervisor
from alphad.daemon.shell.topology import segment_names
from alphad.ipc import gateway_block as gb
from alphad.ipc.doorbell import DOORBELL_BYTES, arm, disarm
from alphad.ipc.dtypes import EXEC_DTYPE, VENUE_REQ_DTYPE
from alphad.ipc.control import S_READY, STAGE_INDEX, ControlBlock
from alphad.ipc.doorbell import Doorbells
from alphad.ipc.ring import Ring, ring_pending, ring_pop, ring_push

#: The consumer name of the gateway on ``venue_orders`` and of the router on ``venue_exec``.
GATEWAY, ROUTER = "gateway", "router"
_SYS_FUTEX, _FUTEX_WAIT = 202, 0
HEARTBEAT_S = 0.1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    p.add_argument("--doorbell", type=int, required=True, help="this process's doorbell index (given by `alphad run`)")


def read_keys(spec) -> tuple[str, str]:
    """The API keys from the environment; a missing one names its variable (never its value)."""
    key, secret = os.environ.get(spec.key_env, ""), os.environ.get(spec.secret_env, "")
    missing = [name for name, v in ((spec.key_env, key), (spec.secret_env, secret)) if not v]
    if missing:
        raise RuntimeError(f"router.venue alpaca needs the API keys in the environment: {' and '.join(missing)} "
                           "not set (Alpaca's paper keys: https://app.alpaca.markets, Paper account, API keys)")
    return key, secret


class RequestReader(threading.Thread):
    """Waits for the router's requests and hands each batch to the event loop."""

    def __init__(self, ring: Ring, consumer: int, bells: Doorbells, idx: int, deliver):
        super().__init__(name="alphad-gateway-requests", daemon=True)
        self.ring, self.ci, self.bells, self.idx, self.deliver = ring, consumer, bells, idx, deliver
        self.stopping = False
        self._buf = np.zeros(256, VENUE_REQ_DTYPE)
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self._timespec = (ctypes.c_int64 * 2)(0, 50_000_000)  # look at `stopping` every 50 ms

    def run(self) -> None:
        r, words = self.ring, self.bells.words
        addr = self.bells.addr + self.idx * DOORBELL_BYTES
        while not self.stopping:
            n = ring_pop(r.h64, r.b8, self.ci, self._buf.view(np.uint8), len(self._buf))
            if n:
                self.deliver(self._buf[:n].copy())
                continue
            seq = arm(words, self.idx)
            if ring_pending(r.h64, self.ci):
                disarm(words, self.idx)
                continue
            self._libc.syscall(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_long(_FUTEX_WAIT),
                               ctypes.c_long(int(seq)), ctypes.byref(self._timespec), ctypes.c_void_p(0),
                               ctypes.c_long(0))
            disarm(words, self.idx)


def pusher(ring: Ring):
    """``emit(tuples)``: exec reports onto ``venue_exec``; waits (sleeping, GIL released) while
    the lossless ring is full rather than drop one."""
    bells = ring.bells

    def emit(recs) -> None:
        arr = np.array(recs, EXEC_DTYPE)
        done = 0
        while done < len(arr):
            done += int(ring_push(ring.h64, ring.b8, bells.words, bells.addr, arr[done:].view(np.uint8), len(arr) - done))
            if done < len(arr):
                time.sleep(0.0001)
    return emit


def pipeline_quiet(names: dict, bells: Doorbells, replies: Ring):
    """``quiet() -> bool``: router and risk are ready and every exec report the gateway
    pushed has reached risk (``venue_exec`` drained by the router, ``exec`` by risk): only
    then do risk's positions say what the broker's should be.  None without a supervisor's
    control block (a gateway run alone, as ``alphad bench-gateway`` runs it): no check."""
    try:
        control = ControlBlock.attach(names["control"])
    except FileNotFoundError:
        return None
    try:
        exec_ring = Ring.attach(names["ring.exec"], EXEC_DTYPE, bells)
        to_risk = exec_ring.consumer_index("risk")
    except FileNotFoundError:  # router and risk in one process: no ring between them
        exec_ring = None
    from_gateway = replies.consumer_index(ROUTER)

    def quiet() -> bool:
        if not all(control.stage(STAGE_INDEX[s], S_READY) for s in ("risk", "router")):
            return False
        if ring_pending(replies.h64, from_gateway):
            return False
        return exec_ring is None or not ring_pending(exec_ring.h64, to_risk)
    return quiet


def make_gateway(cfg, block: gb.GatewayBlock, emit, **check):
    """The venue's gateway for ``router.venue`` (its SDK imported only here); returns it and
    a line saying where it trades."""
    symbols = [ins.symbol for ins in cfg.universe]
    if cfg.router.venue == "alpaca":
        from alphad.daemon.router.venues.alpaca import AlpacaGateway

        spec = cfg.router.alpaca
        key, secret = read_keys(spec)
        return (AlpacaGateway(spec, symbols, block, emit, key=key, secret=secret, **check),
                f"{spec.endpoint} endpoint {spec.url_override or 'Alpaca'}")
    from alphad.daemon.router.venues.ib import IbGateway

    spec = cfg.router.ib
    return (IbGateway(spec, symbols, block, emit, **check),
            f"TWS/IB Gateway {spec.host}:{spec.port} client id {spec.client_id}")


async def serve(cfg, block: gb.GatewayBlock, requests: Ring, replies: Ring, bells: Doorbells, idx: int,
                stop: asyncio.Event) -> None:
    w = block.words
    loop = asyncio.get_running_loop()

    async def heartbeat():
        while True:
            w[gb.G_HEARTBEAT] = time.monotonic_ns()
            await asyncio.sleep(HEARTBEAT_S)

    beat = loop.create_task(heartbeat())
    names = segment_names(cfg.shm.prefix)
    risk = RiskView(names["risk_state"], cfg)
    gw, where = make_gateway(cfg, block, pusher(replies), risk_positions=risk.positions,
                             quiet=pipeline_quiet(names, bells, replies))
    reader = None
    try:
        await gw.sync.start_up()
        reader = RequestReader(requests, requests.consumer_index(GATEWAY), bells, idx,
                               lambda reqs: loop.call_soon_threadsafe(gw.on_requests, reqs))
        reader.start()
        gw.spawn(gw.sync.keep_reconciled())
        w[gb.G_READY] = 1
        print(f"alphad gateway {cfg.router.venue}: ready ({where}); positions {gw.sync.positions_text()}",
              file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        w[gb.G_READY] = 0
        if reader is not None:
            reader.stopping = True
            reader.join(timeout=1.0)
        beat.cancel()
        await gw.sync.stop()


def run(args) -> int:
    die_with_supervisor()
    cfg, _base = load_config(args.config)
    if cfg.router.venue == "paper":
        raise ValueError("alphad gateway: router.venue is 'paper'; a gateway runs for a live venue (alpaca, ib)")
    names = segment_names(cfg.shm.prefix)
    bells = Doorbells.attach(names["doorbells"])
    block = gb.GatewayBlock.attach(names["gateway"], len(cfg.universe))
    requests = Ring.attach(names["ring.venue_orders"], VENUE_REQ_DTYPE, bells)
    requests.claim(requests.consumer_index(GATEWAY))
    replies = Ring.attach(names["ring.venue_exec"], EXEC_DTYPE, bells)
    replies.claim_producer()
    block.words[gb.G_PID] = os.getpid()
    block.words[gb.G_STARTS] += 1
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # uvloop comes with the extra; plain asyncio works, a little slower
        runner = asyncio.run

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(cfg, block, requests, replies, bells, args.doorbell, stop)
        # Crash-only: the table is in shared memory and nothing else needs tearing down;
        # the event loop's own shutdown would wait seconds for alpaca-py's stream to notice.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    runner(main())
    return 0
