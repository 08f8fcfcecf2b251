"""The shared control block's risk words are exactly the risk library's control array."""
from __future__ import annotations

import os

import numpy as np

from alphad.daemon.risk import codes as rc
from alphad.daemon.risk.checks import set_state
from alphad.ipc import control as cb


def test_risk_words_when_compared_with_risk_codes_then_same_layout():
    assert cb.N_RISK_CONTROL == rc.N_CONTROL_COLS
    assert cb.W_STATE == cb.RISK_CONTROL + rc.C_STATE
    assert cb.W_REASON == cb.RISK_CONTROL + rc.C_STATE_REASON
    assert cb.W_FLATTEN == cb.RISK_CONTROL + rc.C_FLATTEN
    assert cb.W_THROTTLE_NS == cb.RISK_CONTROL + rc.C_THROTTLE_NS
    assert cb.W_EPOCH == cb.RISK_CONTROL + rc.C_EPOCH
    assert cb.REASON_OPERATOR == rc.C_REASON_OPERATOR
    assert (cb.ACTIVE, cb.REDUCING, cb.HALTED) == (rc.ACTIVE, rc.REDUCING, rc.HALTED)


def test_control_block_when_risk_library_latches_halted_then_block_reads_it_and_operator_cannot_lower():
    blk = cb.ControlBlock.create(f"alphad-ctl-test-{os.getpid()}")
    try:
        assert blk.trading_state == cb.ACTIVE and blk.risk_control[rc.C_THROTTLE_NS] == -1
        assert set_state(blk.risk_control, rc.HALTED, rc.DENY_DAILY_LOSS, 5)
        assert blk.trading_state == cb.HALTED and int(blk.words[cb.W_REASON]) == rc.DENY_DAILY_LOSS
        assert not blk.raise_trading_state(cb.REDUCING, 6)  # never lowers
        blk.request_resume()
        assert blk.resume_requests == 1 and blk.trading_state == cb.HALTED  # only risk resumes
        assert np.shares_memory(blk.risk_control, blk.words)
    finally:
        blk.unlink()
        blk.close()
