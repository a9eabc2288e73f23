"""One lazy, typed registry for named things (strategies, scorers, datasets, backends).

Entries are ``"package.module:attribute"`` strings, imported only when looked up, so ``import ttscale``
stays light and a heavy optional dependency is only needed by the entry that uses it. Unknown names get
an :class:`~ttscale.errors.UnknownNameError` that lists what exists and suggests close matches.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to lazily imported objects of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str | T] = {}

    def register(self, name: str, target: str | T) -> None:
        """Register ``target`` (an object, or a ``"module:attr"`` string imported on first use)."""
        if name in self._targets:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._targets[name] = target

    def get(self, name: str) -> T:
        """The object registered as ``name``; raises :class:`UnknownNameError` listing the known names."""
        try:
            target = self._targets[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._targets) from None
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            obj: T = getattr(importlib.import_module(module), attr)
            self._targets[name] = obj
            return obj
        return target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
