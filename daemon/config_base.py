"""What every config section type shares: one base Struct and one set of constrained aliases.

Each package documents its own section beside its code (``daemon/feed/config.py`` holds
``feed:``, ``daemon/risk/config.py`` holds ``risk:``, ...); ``daemon/config.py`` composes them
into :class:`alphad.daemon.config.Config`.  They all derive from :class:`Base` and bound their
values with the aliases below, so an unknown key or a bad value fails the same way in every
section: the error names the path (``$.model.weight_cap``) and what was expected.

This module imports nothing of the daemon, so a stage package's config may use it without
pulling in the shell, the supervisor or any shared-memory code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import yaml
from msgspec import Meta

#: > 0 (an integer).
PositiveInt = Annotated[int, Meta(gt=0)]
#: >= 0 (an integer).
NonNegInt = Annotated[int, Meta(ge=0)]
#: > 0.
PositiveFloat = Annotated[float, Meta(gt=0)]
#: >= 0.
NonNegFloat = Annotated[float, Meta(ge=0)]
#: A share in [0, 1]: 0 is allowed (``model.weight_cap``, ``router.algo.urgency``, ...).
Fraction = Annotated[float, Meta(ge=0, le=1)]
#: A share in (0, 1]: 0 is not a meaningful limit (``risk.account.daily_loss_limit``, drawdown
#: steps, position weights, ...), so it is rejected.
PositiveFraction = Annotated[float, Meta(gt=0, le=1)]


class Base(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every config section: keyword-only, immutable, unknown keys are errors."""


class _TextDates(yaml.SafeLoader):
    """YAML without implicit timestamps (see :func:`load_yaml`)."""


_TextDates.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_yaml(raw: bytes | str):
    """A config file's YAML as plain objects, a date or time left as its text: unquoted
    ``2017-01-01`` and quoted ``"2017-01-01"`` read the same, and the field that holds it
    parses it with its own error.  Raises ``yaml.YAMLError`` on bad YAML."""
    return yaml.load(raw, Loader=_TextDates)


def read_file(path: Path, what: str, error: type[Exception]) -> bytes:
    """The bytes of YAML file ``path``, or ``error`` with one line naming ``what`` (``config
    file``, ``study file``), the path and why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} was not found") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a directory, expected a YAML file") from None
    except PermissionError:
        raise error(f"{what} {path} cannot be read: permission denied") from None
    except OSError as e:  # anything else the OS says about reading it
        raise error(f"{what} {path} cannot be read: {e.strerror or e}") from None


def resolve(base: Path, p: str) -> Path:
    """A path from the config, relative to the config's folder unless absolute."""
    q = Path(p)
    return q if q.is_absolute() else base / q
