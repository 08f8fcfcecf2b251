"""`alphad audit`: verify finds every kind of damage across rotated files and names the first
bad line; orders, fills and positions read back what the journal holds.  Real journals
written by the daemon's writer, damaged the way a disk, a crash or a forger would."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgspec
import pytest

from alphad.daemon.cli import main as alphad
from alphad.daemon.supervisor.journal import JournalWriter
from alphad.daemon.supervisor.journal_chain import Mac, canonical, write_anchor
from alphad.daemon.supervisor.journal_files import journal_set
from alphad.ipc.dtypes import EXEC_ACK, EXEC_CANCELED, EXEC_FILL, EXEC_REJECT, SIDE_BUY, SIDE_SELL

REPO = Path(__file__).resolve().parents[2]


def journal(tmp_path: Path, n: int = 40) -> tuple[Path, list[Path]]:
    """A journal of ``n`` orders and fills in tiny rotated files; its folder and files."""
    d = tmp_path / "journal"
    w = JournalWriter(d, rotate_mb=0.0015)
    for i in range(n):
        w.append("order", {"client_order_id": i, "instrument": i % 2, "side": SIDE_BUY, "qty": 1.0})
        w.append("exec", {"client_order_id": i, "instrument": i % 2, "side": SIDE_BUY, "status": EXEC_FILL,
                          "reason": 0, "fill_qty": 1.0, "fill_px": 100.0, "fee": 0.01, "leaves_qty": 0.0})
    w.append("control", {"command": "shutdown"})  # the active file is never empty here
    w.close()
    files = journal_set(d)
    assert len(files) >= 5 and files[-1].stat().st_size > 0
    return d, files


def lines_of(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def audit(*args, capsys) -> tuple[int, str, str]:
    code = alphad(["audit", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_when_intact_then_exit_0_with_the_span_and_the_anchor(tmp_path, capsys):
    d, files = journal(tmp_path)
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 0 and "journal intact: 81 entries (entries n=0..80)" in out and f"in {len(files)} files" in out
    assert "anchor: entry n=80 in journal.jsonl" in out


@pytest.mark.parametrize("bit, reason", [(0x02, "HMAC mismatch"), (0x80, "bad UTF-8"), (None, "bad JSON")])
def test_verify_when_one_byte_flipped_in_a_rotated_file_then_that_line_is_named(tmp_path, capsys, bit, reason):
    d, files = journal(tmp_path)
    lines = lines_of(files[1])
    if bit is None:
        i, bit = 0, 0x01  # the line's opening brace: '{' -> 'z'
    else:
        i = lines[2].index(b'"qty":') + 6  # a digit of the quantity
    line = bytearray(lines[2])
    line[i] ^= bit
    lines[2] = bytes(line)
    files[1].write_bytes(b"".join(lines))
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[1]}:3: {reason}"), out


def test_verify_when_a_line_dropped_inside_a_file_or_at_its_end_then_the_break_is_named(tmp_path, capsys):
    d, files = journal(tmp_path)
    lines = lines_of(files[1])
    files[1].write_bytes(b"".join(lines[:1] + lines[2:]))
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[1]}:2: gap in entry numbers"), out
    d, files = journal(tmp_path / "b")
    files[2].write_bytes(b"".join(lines_of(files[2])[:-1]))  # the last line of a rotated file
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[3]}:1: broken link between files: {files[2].name} ends"), out


def test_verify_when_the_tail_is_cut_then_the_anchor_names_where_it_ends(tmp_path, capsys):
    d, files = journal(tmp_path)
    active = lines_of(files[-1])
    files[-1].write_bytes(b"".join(active[:-2]))  # the last two lines of the active file
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[-1]}:{len(active) - 1}: truncated tail: the anchor records entry "
                                        "n=80"), out
    d, files = journal(tmp_path / "b")
    files[-1].write_bytes(b"")  # the whole active file, and the last rotated file's last line
    rotated = lines_of(files[-2])
    files[-2].write_bytes(b"".join(rotated[:-1]))
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[-2]}:{len(rotated)}: truncated tail"), out


def rewrite(files: list[Path], at: tuple[int, int], sign) -> None:
    """Change the entry at ``at`` (file index, line index) and recompute every hash from
    there on with ``sign(prev, body) -> body``: what a forger without the key can do."""
    prev = None
    for k, p in enumerate(files):
        out = []
        for j, raw in enumerate(lines_of(p)):
            body = json.loads(raw)
            if (k, j) >= at:
                if (k, j) == at:
                    body["qty"] = 1000.0
                body["prev"] = prev if prev is not None else body["prev"]
                del body["hash"]
                body = sign(prev if prev is not None else body["prev"], body)
            prev = body["hash"]
            out.append((json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode())
        p.write_bytes(b"".join(out))


def forged_key(prev, body):
    body["hash"] = Mac(b"not the key, but a key" * 2).entry(prev, canonical(body))
    return body


def unkeyed(prev, body):
    body.pop("chain", None)
    body["hash"] = hashlib.sha256((prev + canonical(body)).encode()).hexdigest()
    return body


@pytest.mark.parametrize("sign, reason", [(forged_key, "HMAC mismatch"),
                                          (unkeyed, "unkeyed entry where the chain is keyed")])
def test_verify_when_the_chain_is_rewritten_without_the_key_then_the_first_changed_line_is_named(
        tmp_path, capsys, sign, reason):
    d, files = journal(tmp_path)
    rewrite(files, (1, 1), sign)  # from the second line of the first rotated file after the oldest
    last = json.loads(lines_of(files[-1])[-1])
    write_anchor(files[-1], Mac(b"not the key, but a key" * 2), n=last["n"], hash=last["hash"], file=files[-1].name,
                 end=files[-1].stat().st_size, keyed_from=0)  # and the anchor forged to match
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[1]}:2: {reason}"), out
    d, files = journal(tmp_path / "b")
    rewrite(files, (0, 0), forged_key)  # every hash, from the first line
    code, out, _ = audit("verify", d, capsys=capsys)
    assert code == 1 and out.startswith(f"{files[0]}:1: HMAC mismatch"), out


def test_verify_when_the_journal_or_key_is_missing_then_one_line_error_and_exit_2(tmp_path, capsys):
    code, out, err = audit("verify", tmp_path / "nowhere", capsys=capsys)
    assert code == 2 and err.strip() == f"alphad audit: error: journal folder expected at {tmp_path / 'nowhere'}, was missing"
    d, _ = journal(tmp_path)
    capsys.readouterr()  # the writer's note that it made the key
    code, out, err = audit("verify", d, "--key-file", tmp_path / "no.key", capsys=capsys)
    assert code == 2 and "journal key expected at" in err and "Traceback" not in err and len(err.splitlines()) == 1
    (tmp_path / "journal.key").unlink()  # the default key, beside the folder
    code, out, err = audit("verify", d, capsys=capsys)
    assert code == 2 and f"journal key expected at {tmp_path / 'journal.key'}" in err


def test_verify_when_no_dir_then_the_configs_journal_and_key(tmp_path, capsys):
    d, _ = journal(tmp_path)
    key = tmp_path / "keys" / "alphad.key"
    key.parent.mkdir()
    os.replace(tmp_path / "journal.key", key)
    cfg = msgspec.yaml.decode((REPO / "config.yaml").read_text())
    cfg["journal"].update(dir="journal", key_file="keys/alphad.key")
    (tmp_path / "config.yaml").write_bytes(msgspec.yaml.encode(cfg))
    code, out, _ = audit("verify", "--config", tmp_path / "config.yaml", capsys=capsys)
    assert code == 0 and "journal intact" in out, out


def test_orders_fills_positions_when_read_then_each_order_ends_as_journaled(tmp_path, capsys):
    d = tmp_path / "journal"
    w = JournalWriter(d)
    order = lambda cid, ins, side, qty, **kw: w.append("order", {"client_order_id": cid, "instrument": ins,
                                                                   "side": side, "qty": qty, **kw})
    report = lambda cid, ins, side, status, q=0.0, px=None, fee=0.0, reason=0: w.append("exec", {
        "client_order_id": cid, "instrument": ins, "side": side, "status": status, "reason": reason,
        "fill_qty": q, "fill_px": px, "fee": fee, "leaves_qty": 0.0})
    order(1, 0, SIDE_BUY, 2.0, limit_px=None)
    report(1, 0, SIDE_BUY, EXEC_ACK)
    report(1, 0, SIDE_BUY, EXEC_FILL, 0.5, 100.0, 0.05)
    report(1, 0, SIDE_BUY, EXEC_FILL, 1.5, 104.0, 0.15)
    order(2, 1, SIDE_SELL, 1.0, limit_px=2000.0)
    report(2, 1, SIDE_SELL, EXEC_CANCELED, reason=4)  # venue_lost
    order(3, 1, SIDE_SELL, 1.0)
    report(3, 1, SIDE_SELL, EXEC_REJECT, reason=13)  # price_band
    order(4, 0, SIDE_SELL, 0.5)
    report(4, 0, SIDE_SELL, EXEC_FILL, 0.5, 110.0, 0.02)
    order(5, 1, SIDE_BUY, 3.0)  # still open
    report(0, 1, SIDE_BUY, EXEC_FILL, 0.25, 2000.0)  # the venue wins: a booked difference
    w.close()
    code, out, _ = audit("orders", d, "--config", REPO / "config.yaml", capsys=capsys)
    assert code == 0
    rows = {line.split()[2]: line for line in out.splitlines()[2:] if line[:4].isdigit()}
    assert rows["1"].rstrip().endswith("filled") and " 103 " in rows["1"] and "BTCUSDT" in rows["1"]  # avg px
    assert rows["2"].rstrip().endswith("canceled (venue_lost)") and "limit 2000" in rows["2"]
    assert rows["3"].rstrip().endswith("rejected (price_band)")
    assert rows["5"].rstrip().endswith("open") and "5 orders, 1 open" in out
    code, out, _ = audit("fills", d, capsys=capsys)
    assert code == 0 and "4 fills" in out and "venue adjustment" in out
    code, out, _ = audit("positions", d, "--config", REPO / "config.yaml", capsys=capsys)
    table = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert table["BTCUSDT"][1:4] == ["1.5", "2", "0.5"] and table["ETHUSDT"][1] == "0.25"
    assert table["BTCUSDT"][7] == f"{0.5 * 110 - 0.5 * 100 - 1.5 * 104 - 0.22:.2f}"  # cash flow after fees


def test_audit_help_explains_each_table(capsys):
    with pytest.raises(SystemExit) as e:
        alphad(["audit", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "verify" in out and "positions" in out and "--key-file" in out
