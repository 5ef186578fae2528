"""The number of torch CPU threads, set for one block of code."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["cpu_threads"]


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: unchanged), then restore the count.

    Small problems run faster on one thread: on two cores a second thread's synchronisation
    costs more than it saves, and on a shared machine it stalls.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
