"""The study file of ``alphad study`` (e.g. ``studies/seed_claims.yaml``), decoded and checked.

A study is a baseline (a daemon config for ``alphad backtest`` and a research config for
``alphad train``) plus named **variants**, each changing one thing: dotted overrides of the
daemon config (``backtest``), of the research config (``train``), features dropped from every
ensemble member (``drop_features``), or LightGBM parameters chosen by cross-validation first
(``select``).  Every variant runs in every **window**, with a model trained by the research
pipeline on data up to the window's ``train_end`` only.  **Claims** are the report's rows: the
effect of one enhancement, measured as variant ``with`` minus variant ``without``.

Relative paths in the study file are taken from its folder.
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

#: The variant every study has: the configs as they are.
BASELINE = "baseline"
#: What a claim is judged on (``ops/study/stats.py`` computes each).
METRICS = ("return_bps", "sharpe", "max_drawdown_reduction", "cost_bps")


class _Base(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class Window(_Base, kw_only=True):
    """A trading window: trade from ``trade_from`` (the file's earlier days warm the features)
    until ``trade_until`` (empty: the end of the file), with a model trained up to ``train_end``."""
    name: str
    trade_from: str
    train_end: str
    trade_until: str = ""

    def __post_init__(self) -> None:
        for key in ("trade_from", "train_end") + (("trade_until",) if self.trade_until else ()):
            try:
                datetime.date.fromisoformat(getattr(self, key))
            except ValueError:
                raise ValueError(f"windows[{self.name}].{key} expected a date such as 2017-01-01, "
                                 f"found {getattr(self, key)!r}") from None
        if self.train_end >= self.trade_from:
            raise ValueError(f"windows[{self.name}]: train_end {self.train_end} expected before trade_from "
                             f"{self.trade_from} (a model may not see the days it trades)")


class Selection(_Base, kw_only=True):
    """Choose the members' LightGBM parameters among ``candidates`` by the mean IC of a
    ``scheme`` cross-validation on the training data (``ops/study/selection.py``), then
    train and trade the chosen ones."""
    scheme: Literal["purged_kfold", "kfold"]
    candidates: tuple[dict[str, Any], ...]
    n_splits: int = 5


class Variant(_Base, kw_only=True):
    name: str
    description: str = ""
    backtest: dict[str, Any] = {}
    train: dict[str, Any] = {}
    drop_features: tuple[str, ...] = ()
    select: Selection | None = None

    @property
    def trains(self) -> bool:
        """Whether this variant's model differs from the baseline's."""
        return bool(self.train or self.drop_features or self.select)


class Claim(_Base, kw_only=True):
    """One row of the report: a seed's claim and the two variants that measure it."""
    name: str
    claim: str                       # in the seed's words
    source: str                      # where the claim comes from
    claimed: str                     # the claimed effect, as written
    metric: Literal["return_bps", "sharpe", "max_drawdown_reduction", "cost_bps"] = "return_bps"
    claimed_sign: Literal[1, -1] = 1  # the direction the claim predicts for the metric
    with_: str = msgspec.field(name="with")
    without: str


class Bootstrap(_Base, kw_only=True):
    n_boot: int = 2000
    alpha: float = 0.05
    seed: int = 20261206


class IntradayClaim(_Base, kw_only=True):
    """A claim measured on the Binance capture (``ops/study/intraday.py``), not by a variant."""
    name: str
    claim: str
    source: str
    claimed: str
    measure: Literal["micro_vs_quote_ic", "micro_vs_quote_pnl", "ofi_r2", "twap_vs_immediate"]


class Study(_Base, kw_only=True):
    name: str
    backtest: str                    # the daemon config (alphad backtest)
    train: str                       # the research config (alphad train)
    windows: tuple[Window, ...]
    primary_window: str              # the window the verdicts are read on
    variants: tuple[Variant, ...]
    claims: tuple[Claim, ...] = ()
    intraday: tuple[IntradayClaim, ...] = ()
    intraday_data: str = ""          # the folder of the Binance capture (l2/), e.g. ../../shared/data
    intraday_config: str = ""        # the daemon config the TWAP comparison starts from (config.yaml)
    bootstrap: Bootstrap = Bootstrap()
    pbo_splits: int = 16
    report: str = ""                 # the markdown report (its PNGs beside it, in <stem>/)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if BASELINE in names:
            raise ValueError(f"variants: {BASELINE!r} is the configs as they are; it needs no entry")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variants: names expected unique, found {dup} more than once")
        known = {BASELINE, *names}
        for c in self.claims:
            for side in (c.with_, c.without):
                if side not in known:
                    raise ValueError(f"claims[{c.name}]: variant {side!r} expected one of {sorted(known)}")
        windows = [w.name for w in self.windows]
        if not windows:
            raise ValueError("windows: expected at least one window")
        if self.primary_window not in windows:
            raise ValueError(f"primary_window expected one of {windows}, found {self.primary_window!r}")
        if self.intraday and not (self.intraday_data and self.intraday_config):
            raise ValueError("intraday claims expected intraday_data (the shared data folder) and intraday_config "
                             "(the daemon config of the TWAP comparison)")
        if self.pbo_splits < 2 or self.pbo_splits % 2:
            raise ValueError(f"pbo_splits expected an even number >= 2, found {self.pbo_splits}")

    def variant(self, name: str) -> Variant:
        return Variant(name=BASELINE) if name == BASELINE else next(v for v in self.variants if v.name == name)

    def all_variants(self) -> list[Variant]:
        return [Variant(name=BASELINE, description="the configs as they are")] + list(self.variants)


class StudyError(ValueError):
    """A study file that cannot run: the message names the file and what is wrong."""


def load(path: str | Path) -> tuple[Study, Path]:
    """Decode ``path``; returns the study and its folder (relative paths resolve there)."""
    from alphad.daemon.config_base import load_yaml, read_file

    path = Path(path)
    raw = read_file(path, "study file", StudyError)
    try:
        obj = load_yaml(raw)
    except yaml.YAMLError as e:
        raise StudyError(f"{path}: not valid YAML: {e}") from None
    try:
        study = msgspec.convert(obj, Study)
    except (msgspec.ValidationError, ValueError) as e:
        raise StudyError(f"{path}: {e}") from None
    base = path.resolve().parent
    for key in ("backtest", "train"):
        if not (base / getattr(study, key)).is_file():
            raise StudyError(f"{path}: {key} expected a config file, found nothing at {base / getattr(study, key)}")
    return study, base


def set_dotted(doc: dict, key: str, value: Any) -> None:
    """``doc[a][b][c] = value`` for ``key`` ``a.b.c``, creating missing sections."""
    parts = key.split(".")
    node = doc
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise StudyError(f"override {key}: {'.'.join(parts[:i + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value
