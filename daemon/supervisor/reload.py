"""``ctl reload``, ``ctl set`` and SIGHUP: settings that change without a restart.

``reload`` reads the config file again (the one ``alphad run`` was started with) and applies
what may change live; ``set KEY VALUE`` does the same with one value changed (``set`` values
stay over later reloads until the daemon stops; they are journaled).  What may change live:

* the risk limits: ``risk.instrument_defaults``, ``risk.instruments``, ``risk.account``,
  ``risk.min_order_notional``, ``risk.max_signal_age_ms``, ``risk.max_data_age_ms`` (the risk
  stage takes them at once);
* the model: ``model.card`` (another card, or the same path retrained). The card must pass
  every check first (readable, the running features, the graph's sha256, every training
  gate passed); the infer stage loads it beside the running model and swaps between two
  batches, so no tick waits for the load and none is lost.

Every other changed key is named in the answer as needing a restart, and left as it runs.
The whole config is checked as at start; a bad one changes nothing.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec

from alphad.daemon.config import Config, ConfigError, decode_config, load_config, resolve
from alphad.daemon.shell.reload import write_settings
from alphad.ipc import frames
from alphad.ipc.control import S_RELOADED, STAGE_INDEX, W_RELOAD

#: (section, key) that a running daemon takes; the stage that applies each section.
LIVE = {("risk", "instrument_defaults"), ("risk", "instruments"), ("risk", "account"),
        ("risk", "min_order_notional"), ("risk", "max_signal_age_ms"), ("risk", "max_data_age_ms"),
        ("model", "card")}
APPLIED_BY = {"risk": "risk", "model": "infer"}
#: Sections the command line may override at start (``--topology``, ``--shm-prefix``): the
#: running ones are kept, never reported as changed.
KEPT = ("topology", "shm")
#: How long the stages get to answer (the infer stage loads and warms a model meanwhile; the
#: supervisor's loop waits with it).
ANSWER_TIMEOUT_S = 10.0


def parse_setting(key: str, value: str) -> tuple[list[str], Any]:
    """``risk.account.daily_loss_limit`` and ``0.03`` as a path and a YAML value."""
    path = key.split(".")
    if len(path) < 2 or not all(path):
        raise ValueError(f"set: expected a dotted key such as risk.account.daily_loss_limit, found {key!r}")
    if (path[0], path[1]) not in LIVE:
        live = sorted(".".join(k) for k in LIVE)
        raise ValueError(f"set {key}: not a setting that changes while running (those under {live} do); "
                         "edit the config and restart")
    try:
        return path, msgspec.yaml.decode(value.encode())
    except msgspec.DecodeError as e:
        raise ValueError(f"set {key}: the value {value!r} is not YAML: {e}") from None


def with_settings(cfg: Config, overrides: dict[str, tuple[list[str], Any]]) -> Config:
    """``cfg`` with the ``set`` values, checked as the whole config is at start."""
    raw = msgspec.to_builtins(cfg)
    for key, (path, value) in overrides.items():
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"set {key}: the config has no section {part!r} there")
            node = node[part]
        if path[-1] not in node and not isinstance(node, dict):
            raise ValueError(f"set {key}: the config has no key {path[-1]!r}")
        node[path[-1]] = value
    return decode_config(msgspec.yaml.encode(raw), source="set")


def changes(running: Config, new: Config) -> tuple[list[str], list[str]]:
    """(keys that change live, keys that changed but need a restart), as dotted names."""
    a, b = msgspec.to_builtins(running), msgspec.to_builtins(new)
    live, restart = [], []
    for section in sorted(set(a) | set(b)):
        if section in KEPT or a.get(section) == b.get(section):
            continue
        old, cur = a.get(section), b.get(section)
        if not (isinstance(old, dict) and isinstance(cur, dict)):
            restart.append(section)
            continue
        for key in sorted(set(old) | set(cur)):
            if old.get(key) != cur.get(key):
                (live if (section, key) in LIVE else restart).append(f"{section}.{key}")
    return live, restart


def check_card(base: Path, new: Config, running: Config) -> None:
    """The new model card's checks before the infer stage is asked to load it."""
    from alphad.daemon.infer.model_card import read_card, sha256_file

    path = resolve(base, new.model.card)
    card = read_card(path)
    features = read_card(resolve(base, running.model.card)).feature_names
    if list(card.feature_names) != list(features):
        raise ValueError(f"{path}: the model expects features {card.feature_names}, the running features "
                         f"stage publishes {features}")
    onnx = path.parent / card.onnx_file
    if not onnx.is_file():
        raise FileNotFoundError(f"{path}: its graph {onnx} was not found")
    digest = sha256_file(onnx)
    if digest != card.onnx_sha256:
        raise ValueError(f"{onnx}: sha256 {digest} differs from the card's {card.onnx_sha256}")
    failed = [g.name for g in card.gates if not g.passed]
    if failed:
        raise ValueError(f"{path}: training gates failed: {failed}")


class Reloader:
    """The supervisor's side of live settings (``sup``: the supervisor)."""

    def __init__(self, sup):
        self.sup = sup
        #: The file ``alphad run`` was given (``run`` sets it: the stages may read an effective copy).
        self.source: Path = Path(sup.config_path)
        self.overrides: dict[str, tuple[list[str], Any]] = {}
        self.hup = False  # SIGHUP asks for a reload; the loop performs it

    def reload(self, set_key: str | None = None, set_value: str | None = None) -> frames._Frame:
        """Read the config again (with ``set``'s values), apply what may change live."""
        sup = self.sup
        overrides = dict(self.overrides)
        try:
            if set_key is not None:
                overrides[set_key] = parse_setting(set_key, set_value or "")
            new, _ = load_config(self.source)
            new = with_settings(new, overrides)
            new = msgspec.structs.replace(new, **{s: getattr(sup.cfg, s) for s in KEPT})
            live, restart = changes(sup.cfg, new)
            if "model.card" in live or (self._card_changed(new)):
                check_card(sup.base, new, sup.cfg)
                if "model.card" not in live:
                    live.append("model.card")
        except (ConfigError, ValueError, FileNotFoundError) as e:
            return frames.Error(error=f"reload refused, nothing changed: {e}")
        if not live:
            return frames.Ok(message="nothing to apply" + _restart_note(restart))
        stages = sorted({APPLIED_BY[k.split(".")[0]] for k in live})
        gen, answers = self._publish(new, stages)
        if any(a != gen for a in answers.values()):
            bad = sorted(s for s, a in answers.items() if a != gen)
            # back to the running settings, so that every stage (and any that restarts) runs them
            self._publish(sup.cfg, stages)
            return frames.Error(error=f"reload refused, nothing changed: {bad} could not apply generation {gen} "
                                      f"({'refused' if any(a == -gen for a in answers.values()) else 'no answer'}; "
                                      "see the stage's log)")
        sup.cfg = new
        self.overrides = overrides
        if "model.card" in live:
            sup.drift_watch.retarget(sup.base, new.model.card)
        if sup.journal is not None:
            sup.journal.control("reload", {"generation": gen, "applied": live, "needs_restart": restart,
                                           "set": self.status(), "who": sup.port.who})
        return frames.Ok(message=f"settings generation {gen}: applied {live}" + _restart_note(restart))

    def _card_changed(self, new: Config) -> bool:
        """The same card path retrained in place: its graph is another one."""
        from alphad.daemon.infer.model_card import read_card

        path = resolve(self.sup.base, new.model.card)
        running = self.sup.drift_watch.card_sha256
        return bool(running) and path.is_file() and read_card(path).onnx_sha256 != running

    def _publish(self, cfg: Config, stages: list[str]) -> tuple[int, dict[str, int]]:
        """``cfg`` as the next settings generation; the answers of ``stages``."""
        control = self.sup.control
        gen = int(control.words[W_RELOAD]) + 1
        write_settings(cfg, self.sup.cfg.shm.prefix)  # first: a stage restarting now reads it
        control.words[W_RELOAD] = gen
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while True:
            answers = {s: control.stage(STAGE_INDEX[s], S_RELOADED) for s in stages}
            if all(abs(a) == gen for a in answers.values()) or time.monotonic() > deadline:
                return gen, answers
            time.sleep(0.01)

    def status(self) -> dict[str, Any]:
        """The ``set`` values in force (``ctl status``)."""
        return {k: v for k, (_, v) in self.overrides.items()}


def _restart_note(restart: list[str]) -> str:
    return f"; changed but needing a restart (left as they run): {restart}" if restart else ""
