"""Progress bars on long work: tqdm when it is installed (the train extra), else a plain count."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, desc: str, *, quiet: bool = False) -> Iterator[T]:
    """Yield ``items`` while showing how far along they are on stderr."""
    if quiet or not sys.stderr.isatty():  # logs and pipes get no bars
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:  # the runtime install: a count that rewrites its line
        for done, item in enumerate(items, start=1):
            yield item
            print(f"\r{desc}: {done}/{total}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        return
    yield from tqdm(items, total=total, desc=desc, unit="batch", leave=False, file=sys.stderr)
