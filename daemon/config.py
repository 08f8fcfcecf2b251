"""config.yaml, decoded once into frozen msgspec types: the root of the config.

Each section's types live beside the package that uses them, and this module composes
them into :class:`Config`:

=============================================  ==========================================
section                                        module
=============================================  ==========================================
``universe``                                   here (:class:`Instrument`)
``topology``, ``rings``, ``shm``               ``daemon/shell/config.py``
``feed``                                       ``daemon/feed/config.py``
``features``                                   ``daemon/features/config.py``
``model``                                      ``daemon/infer/config.py``
``risk``                                       ``daemon/risk/config.py``
``router``                                     ``daemon/router/config.py`` (venues:
                                               ``daemon/router/venues/paper.py``)
``control``, ``metrics``, ``journal``,         ``daemon/supervisor/config.py``
``supervisor``
=============================================  ==========================================

All of them derive from :class:`alphad.daemon.config_base.Base` and use its constrained
aliases.  Unknown keys are rejected and every error names the path of the offending
value (``$.risk.max_order_notional``) and what was expected, so a typo fails at
start-up instead of at 3 a.m.  Hot code never sees these objects: each stage
copies the values it needs into plain ints, floats and arrays.
"""
from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from alphad.daemon.config_base import load_yaml, read_file

from alphad.daemon.config_base import Base, NonNegInt, PositiveFloat, resolve
from alphad.daemon.feed.config import Feed
from alphad.daemon.features.config import Features
from alphad.daemon.infer.config import Model
from alphad.daemon.risk.config import Risk
from alphad.daemon.router.config import Router
from alphad.daemon.shell.config import Rings, Shm, Topology
from alphad.daemon.supervisor.config import Control, Journal, Metrics, Supervisor

__all__ = ["Config", "ConfigError", "Instrument", "decode_config", "load_config", "resolve"]


class Instrument(Base):
    id: NonNegInt
    symbol: str
    sector: str = ""
    tick_size: PositiveFloat = 0.01
    lot_size: PositiveFloat = 1.0


class Config(Base):
    universe: list[Instrument]
    topology: Topology = Topology()
    rings: Rings = Rings()
    feed: Feed = Feed()
    features: Features = Features()
    model: Model = Model()
    risk: Risk = Risk()
    router: Router = Router()
    control: Control = Control()
    metrics: Metrics = Metrics()
    journal: Journal = Journal()
    shm: Shm = Shm()
    supervisor: Supervisor = Supervisor()

    def __post_init__(self):
        ids = [i.id for i in self.universe]
        if ids != list(range(len(ids))):
            raise ValueError(f"universe ids must be 0..{len(ids) - 1} in order, were {ids}")
        symbols = [i.symbol for i in self.universe]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"universe symbols must be unique, were {symbols}")
        if (self.feed.source == "ib" and self.router.venue == "ib"
                and self.feed.ib.client_id == self.router.ib.client_id):
            raise ValueError(f"feed.ib.client_id and router.ib.client_id are both {self.feed.ib.client_id}: the feed "
                             f"and the order gateway are two API clients of TWS / IB Gateway, each needs an id of "
                             f"its own (defaults: feed 18, router 17)")
        if self.risk.sizing is not None:
            linear = {k: getattr(self.model, k) for k in ("weight_per_unit", "weight_cap", "min_abs_prediction")
                      if getattr(self.model, k) != getattr(Model(), k)}
            if linear:
                raise ValueError(f"model.{', model.'.join(linear)} size linearly, which risk.sizing replaces: "
                                 f"remove one or the other")


class ConfigError(ValueError):
    """config.yaml could not be decoded; the message names the file and the path."""


def load_config(path: str | Path) -> tuple[Config, Path]:
    """Decode ``path``; relative paths inside the config resolve against its folder.

    Returns the config and the folder it came from.
    """
    path = Path(path)
    raw = read_file(path, "config file", ConfigError)
    return decode_config(raw, source=str(path)), path.resolve().parent


def decode_config(raw: bytes | str, *, source: str = "<config>") -> Config:
    try:
        obj = load_yaml(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    try:
        return msgspec.convert(obj, Config)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {e}") from None
