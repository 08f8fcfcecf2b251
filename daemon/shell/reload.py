"""Settings that change while the daemon runs (``ctl reload``, ``ctl set``, SIGHUP), the
stages' side.

The supervisor checks the new settings, writes the whole effective config to
:func:`reload_path` (beside the shared-memory segments, so it goes with them) and raises the
control block's ``W_RELOAD`` generation.  Each process notices it at housekeeping and hands
the new config to its stages (``reload(cfg, gen)``): risk takes its limits at once, infer
loads the new model beside the old one and swaps between two batches.  Each stage answers
``gen`` in its slot's ``S_RELOADED`` (``-gen``: it could not).  A stage that restarts later
starts from the file, not from the config it was first given (:func:`effective`): crash-only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec

from alphad.ipc.control import S_RELOADED, STAGE_INDEX, W_RELOAD
from alphad.ipc.shm import SHM_DIR


def reload_path(prefix: str) -> Path:
    """Where the supervisor leaves the running settings: a ``<prefix>.`` name, so that it is
    removed with the segments at shutdown and cleaned up with a crashed instance's."""
    return SHM_DIR / f"{prefix}.reload.yaml"


def write_settings(cfg, prefix: str) -> None:
    """The effective config ``cfg`` to :func:`reload_path`, atomically (a reader never sees half)."""
    path = reload_path(prefix)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(cfg)))
    os.replace(tmp, path)


def effective(cfg):
    """``cfg``, or the settings a reload made since the daemon started (a restarted stage)."""
    from alphad.daemon.config import decode_config

    path = reload_path(cfg.shm.prefix)
    if not path.exists():
        return cfg
    return decode_config(path.read_bytes(), source=str(path))


class ReloadWatch:
    """Notices a new settings generation for the stages of one process and hands it on."""

    def __init__(self, shell):
        self.shell = shell
        self.seen = int(shell.ctl[W_RELOAD])

    def check(self) -> None:
        gen = int(self.shell.ctl[W_RELOAD])
        if gen == self.seen:
            return
        self.seen = gen
        cfg = effective(self.shell.cfg)
        for name, a in self.shell.adapters.items():
            apply = getattr(a, "reload", None)
            done = True if apply is None else apply(cfg, gen)
            if done is not None:  # None: the stage answers itself when it is done (infer's model)
                answer(self.shell, name, gen, done)
        self.shell.cfg = cfg


def answer(shell, stage: str, gen: int, ok: bool) -> None:
    """Stage ``stage``'s answer to generation ``gen``."""
    shell.control.set_stage(STAGE_INDEX[stage], S_RELOADED, gen if ok else -gen)
    if not ok:
        print(f"alphad stage {stage}: settings generation {gen} not applied", file=sys.stderr, flush=True)
