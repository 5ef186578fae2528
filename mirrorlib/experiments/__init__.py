"""Experiments behind the book's chapters, one module per chapter or paper figure.

Each module offers ``ci`` and ``paper`` presets (:func:`config`) and small functions that return
tidy :class:`pandas.DataFrame` tables; the chapters write those tables with
:func:`mirrorlib.results.write_table` and draw figures from them with :mod:`mirrorlib.plotting`.
Experiments build on the core modules (:mod:`mirrorlib.potentials`, ...) and never import
plotting.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["cpu_threads"]


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: unchanged), then restore the count.

    The experiments' small problems run faster on one thread: on two cores a second thread's
    synchronisation costs more than it saves, and on a shared machine it stalls.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
