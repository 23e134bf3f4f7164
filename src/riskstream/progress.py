"""Progress bars for long jobs, on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """Yield a callback that moves the bar to a running count of ``total``."""
    with tqdm(
        total=total, desc=label, unit="event", unit_scale=True, mininterval=0.5
    ) as bar:

        def advance(done: int) -> None:
            if done - bar.n >= 1000 or done == total:
                bar.update(done - bar.n)

        yield advance
