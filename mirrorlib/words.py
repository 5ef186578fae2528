"""How the book writes numbers, counts, lists, dates and durations in its prose: plain words,
no TeX (glued Markdown does not typeset it), the same way in every chapter."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

__all__ = ["and_list", "count_of", "day_in_words", "duration_in_words", "number_in_words"]


def and_list(items: Collection[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = list(items)
    if not items:
        raise ValueError("and_list needs at least one item")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def count_of(count: int, total: int) -> str:
    """``"8 of the 11"``, or ``"all 11"`` when ``count == total``."""
    return f"all {total}" if count == total else f"{count} of the {total}"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def number_in_words(x: float) -> str:
    """``x`` to three significant digits as a reader writes it: ``"0.0391"``, ``"152"``, and
    from ``10^3`` or below ``10^-3`` in powers of ten, ``"9.62 × 10³"`` (no ``e+03``)."""
    if x == 0 or 1e-3 <= abs(x) < 999.5:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPTS)}"


def day_in_words(date: str) -> str:
    """The day of a :class:`mirrorlib.stored.Provenance` date (``"2026-12-06 04:06 UTC"`` or
    ``"2026-11-28"``) as a reader writes it: ``"6 December 2026"``."""
    day = datetime.strptime(date[:10], "%Y-%m-%d")
    return f"{day.day} {day:%B %Y}"


def duration_in_words(seconds: float) -> str:
    """``seconds`` for a reader: whole seconds below 90 s, whole minutes below 90 min, then
    hours to one decimal ("1 second", "89 seconds", "2 minutes", "1.5 hours")."""
    if seconds < 89.5:
        n = round(seconds)
        return f"{n} second" + ("" if n == 1 else "s")
    if seconds < 89.5 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"
