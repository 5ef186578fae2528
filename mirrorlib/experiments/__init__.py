"""Experiments behind the book's chapters, one module per chapter or paper figure.

Each module offers ``ci`` and ``paper`` presets (:func:`config`) and small functions that return
tidy :class:`pandas.DataFrame` tables; the chapters write those tables with
:func:`mirrorlib.results.write_table` and draw figures from them with :mod:`mirrorlib.plotting`.
Experiments build on the core modules (:mod:`mirrorlib.potentials`, ...) and never import
plotting.
"""

from collections.abc import Callable
from dataclasses import fields, replace
from typing import TypeVar

from mirrorlib.recovery import InputError
from mirrorlib.threads import cpu_threads  # the experiments' modules import it from here

__all__ = ["cpu_threads", "preset", "requirement"]

Config = TypeVar("Config")


def preset(presets: dict[str, Config], scale: str, overrides: dict, what: str) -> Config:
    """``presets[scale]`` with fields replaced by ``overrides``: each module's ``config``.

    Raises :class:`~mirrorlib.recovery.InputError` naming an unknown ``scale`` or an unknown
    setting (``what`` says whose: "the biology chapter").
    """
    if scale not in presets:
        raise InputError(f"unknown scale {scale!r}; choose one of {sorted(presets)}")
    base = presets[scale]
    unknown = sorted(set(overrides) - {f.name for f in fields(base)})
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(unknown)} for {what}")
    return replace(base, **overrides)


def requirement(what: str) -> Callable[[bool, str], None]:
    """A check ``need(ok, message)`` raising ``InputError("bad {what} config: {message}")``."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise InputError(f"bad {what} config: {message}")

    return need
