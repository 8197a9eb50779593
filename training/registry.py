"""A name -> implementation table that recipes refer to by string (datasets, noises,
regularisers), filled by a decorator when the defining module is imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """A dict of ``what``s by name; :meth:`register` refuses a name twice and :meth:`lookup`
    names the known ones when a name is unknown."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make ``fn`` available to recipes under ``name``."""

        def deco(fn: T) -> T:
            if name in self:
                raise ValueError(f"{self.what} {name!r} registered twice")
            self[name] = fn
            return fn

        return deco

    def lookup(self, name: str) -> T:
        try:
            return self[name]
        except KeyError:
            known = ", ".join(sorted(self)) or "none yet"
            raise KeyError(f"unknown {self.what} {name!r} (known: {known})") from None
