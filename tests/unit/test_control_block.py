"""The shared control block's risk words are exactly the risk library's control array."""
from __future__ import annotations

import os

import numpy as np

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.checks import set_state
from alphad.ipc import control as cb


def test_risk_words_when_compared_with_risk_codes_then_one_home_and_one_layout():
    # One home: the risk library's control layout and trading states live in the control block alone.
    for name in ("C_STATE", "C_STATE_REASON", "C_STATE_TS", "C_FLATTEN", "C_THROTTLE_NS", "C_WARNINGS", "C_EPOCH",
                 "N_CONTROL_COLS", "REASON_OPERATOR", "ACTIVE", "REDUCING", "HALTED", "STATE_NAMES"):
        assert hasattr(cb, name) and not hasattr(rc, name), name
    # every block word has its own place, below the first stage slot
    block = [cb.W_MAGIC, cb.W_VERSION, cb.W_SHUTDOWN, cb.W_SUPERVISOR_PID, cb.W_RESUME_REQUESTS, cb.W_ID_SESSION,
             cb.W_CANCEL_ALL_REQUESTS, cb.W_CANCEL_ALL_DONE, cb.W_CANCEL_ALL_SENT, cb.W_DAY_START_EQUITY,
             cb.W_LOSS_REF, cb.W_DAY_RESTORED, *range(cb.RISK_CONTROL, cb.RISK_CONTROL + cb.N_CONTROL_COLS)]
    assert len(set(block)) == len(block) and max(block) < cb.stage_word(0, 0)
    words = [cb.W_STATE, cb.W_REASON, cb.W_STATE_TS, cb.W_FLATTEN, cb.W_THROTTLE_NS, cb.W_WARNINGS, cb.W_EPOCH]
    assert words == list(range(cb.RISK_CONTROL, cb.RISK_CONTROL + cb.N_CONTROL_COLS))
    # The risk control array sits between the block words and the first stage slot.
    assert max(cb.W_MAGIC, cb.W_VERSION, cb.W_SHUTDOWN, cb.W_SUPERVISOR_PID, cb.W_RESUME_REQUESTS) < cb.RISK_CONTROL
    assert cb.RISK_CONTROL + cb.N_CONTROL_COLS <= cb.stage_word(0, 0)


def test_control_block_when_risk_library_latches_halted_then_block_reads_it_and_operator_cannot_lower():
    blk = cb.ControlBlock.create(f"alphad-ctl-test-{os.getpid()}")
    try:
        assert blk.trading_state == cb.ACTIVE and blk.risk_control[cb.C_THROTTLE_NS] == -1
        assert set_state(blk.risk_control, cb.HALTED, rc.DENY_DAILY_LOSS, 5)
        assert blk.trading_state == cb.HALTED and int(blk.words[cb.W_REASON]) == rc.DENY_DAILY_LOSS
        assert not blk.raise_trading_state(cb.REDUCING, 6)  # never lowers
        blk.request_resume()
        assert blk.resume_requests == 1 and blk.trading_state == cb.HALTED  # only risk resumes
        assert np.shares_memory(blk.risk_control, blk.words)
    finally:
        blk.unlink()
        blk.close()
