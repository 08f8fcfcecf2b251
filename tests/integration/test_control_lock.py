"""The control port is locked: loopback only unless CurveZMQ keys are set, only authorised
clients answered, bounded frames, garbage counted and answered, every command journaled
with who sent it.  Real `alphad run`, real CurveZMQ sockets (ZAP), real frames."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zmq

from daemon_rig import REPO, Daemon, free_port
from alphad.daemon.supervisor.control_socket import keygen, read_keys
from alphad.daemon.supervisor.journal import entries
from alphad.ipc import frames
from alphad.ipc.shm import list_segments
from alphad.ops.ctl import request

pytestmark = pytest.mark.slow


def alphad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alphad.daemon.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_without_keys_a_control_port_beyond_loopback_is_refused_at_start(tmp_path):
    cfg = msgspec.yaml.decode((REPO / "config.yaml").read_text())
    cfg["model"]["card"] = str(REPO / cfg["model"]["card"])
    cfg["feed"]["path"] = str(REPO / cfg["feed"]["path"])
    cfg["shm"]["prefix"] = prefix = f"alphad-lock-{os.getpid()}"
    (tmp_path / "config.yaml").write_bytes(msgspec.yaml.encode(cfg))
    r = alphad("run", "--config", "config.yaml", "--control", f"tcp://0.0.0.0:{free_port()}", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "beyond loopback" in r.stderr and "alphad ctl keygen" in r.stderr, r.stderr
    assert not list_segments(prefix)  # refused before anything was made
    cfg["control"] = {"endpoint": "garbage"}
    (tmp_path / "bad.yaml").write_bytes(msgspec.yaml.encode(cfg))
    r = alphad("run", "--config", "bad.yaml", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "tcp://HOST:PORT" in r.stderr, r.stderr
    r = alphad("ctl", "status", "--endpoint", "garbage", cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "tcp://HOST:PORT" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A daemon bound beyond loopback with Curve keys; an authorised and a stranger's key."""
    tmp = tmp_path_factory.mktemp("locked")
    r = alphad("ctl", "keygen", "--out", str(tmp / "server"), "--name", "server", cwd=tmp)
    assert r.returncode == 0, r.stderr
    keygen(tmp / "clients", "ops")
    keygen(tmp / "strangers", "stranger")
    assert oct((tmp / "server" / "server.key_secret").stat().st_mode & 0o777) == "0o600"
    port = free_port()
    d = Daemon(tmp, tag="-locked", sections={"control": {
        "endpoint": f"tcp://0.0.0.0:{port}", "curve_secret_key": str(tmp / "server" / "server.key_secret"),
        "curve_authorized_dir": str(tmp / "clients"), "max_frame_bytes": 65536}})
    d.endpoint = f"tcp://127.0.0.1:{port}"
    server, _ = read_keys(tmp / "server" / "server.key", secret=False)
    d.keys = {name: (*read_keys(tmp / where / f"{name}.key_secret", secret=True), server)
              for name, where in (("ops", "clients"), ("stranger", "strangers"))}
    try:
        d.wait_ready()
        yield d
    finally:
        d.stop()


def test_with_keys_only_an_authorised_client_is_answered_and_its_key_is_journaled(locked):
    reply = request(locked.endpoint, frames.Status(), 10, curve=locked.keys["ops"])
    assert isinstance(reply, frames.StatusReply) and reply.trading_state == "ACTIVE"
    assert request(locked.endpoint, frames.Halt(reason="x"), 3, curve=locked.keys["stranger"]) is None
    assert request(locked.endpoint, frames.Halt(reason="x"), 3) is None  # no Curve at all: no answer
    assert request(locked.endpoint, frames.Status(), 10, curve=locked.keys["ops"]).trading_state == "ACTIVE"
    assert isinstance(request(locked.endpoint, frames.Halt(reason="ops"), 10, curve=locked.keys["ops"]), frames.Ok)
    assert isinstance(request(locked.endpoint, frames.Resume(), 10, curve=locked.keys["ops"]), frames.Ok)
    halts = [e for e in entries(Path(locked.config).parent / "journal" / "journal.jsonl")
             if e["type"] == "control" and e.get("command") == "halt"]
    public = locked.keys["ops"][0].decode()
    assert len(halts) == 1 and halts[0]["who"]["key"] == public and halts[0]["who"]["peer"] == "127.0.0.1"
    r = alphad("ctl", "status", "--endpoint", locked.endpoint, "--timeout", "10", "--curve-key",
               str(Path(locked.config).parent / "clients" / "ops.key_secret"), "--server-key",
               str(Path(locked.config).parent / "server" / "server.key"), cwd=Path(locked.config).parent)
    assert r.returncode == 0 and '"trading_state": "ACTIVE"' in r.stdout, r.stderr


def test_a_frame_over_the_size_limit_is_dropped_and_the_port_answers_on(locked):
    keys = locked.keys["ops"]
    assert request(locked.endpoint, b"\x00" * (2 << 20), 3, curve=keys) is None  # 2 MB: its connection dropped
    assert isinstance(request(locked.endpoint, frames.Status(), 10, curve=keys), frames.StatusReply)


def fuzzed_frames(n: int, seed: int):
    """Random bytes, truncated and bit-flipped valid requests, valid msgpack of wrong shapes."""
    rng = random.Random(seed)
    valid = [frames.encoder.encode(r) for r in (frames.Status(), frames.Halt(reason="why"), frames.Resume())]
    shapes = [msgspec.msgpack.encode(x) for x in ({"type": "nope"}, [1, 2], "status", {"type": 7}, None, 1.5)]
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:
            v = rng.choice(valid)
            yield v[: rng.randrange(0, len(v))]
        elif kind == 2:
            v = bytearray(rng.choice(valid))
            v[rng.randrange(len(v))] ^= 1 << rng.randrange(8)
            yield bytes(v)
        else:
            yield rng.choice(shapes)


def test_fuzzed_control_frames_are_each_answered_and_counted_and_the_daemon_lives(locked):
    n = int(os.environ.get("ALPHAD_FUZZ_FRAMES", "5000"))  # `make fuzz-control`: one million
    keys = locked.keys["ops"]
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys
    s.connect(locked.endpoint)
    before = request(locked.endpoint, frames.Status(), 10, curve=keys).bad_requests
    sent = bad = window = 0
    try:
        for raw in fuzzed_frames(n, seed=21):
            s.send(raw)
            sent += 1
            window += 1
            if window == 100 or sent == n:  # a window of requests in flight, then every answer
                for _ in range(window):
                    assert s.poll(10_000), f"no answer to frame {sent} of {n}"
                    reply = frames.reply_decoder.decode(s.recv())
                    bad += isinstance(reply, frames.Error) and reply.error.startswith("bad request")
                window = 0
    finally:
        s.close(0)
    st = request(locked.endpoint, frames.Status(), 10, curve=keys)
    assert st.bad_requests - before == bad and bad > n // 2
    assert all(stage.alive for stage in st.stages.values())
    print(f"{n} fuzzed control frames: {bad} bad requests answered and counted, 0 crashes")
