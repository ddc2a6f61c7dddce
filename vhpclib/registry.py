"""A named registry: how workloads, launchers, MPI flavours and environment providers are found by the name an
inventory or CLI uses.

A name may be registered lazily (``add_lazy``: the module that registers it is imported on first use), so the
inventory schema can resolve names without importing backends (ReFrame's ``core/backends.py`` does the same).
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

from .exceptions import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name; an unknown name is one ``InputError`` listing the known ones."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> module that registers it when imported
        # Declaration order (add or add_lazy, whichever came first): items() and names() follow it, so what
        # loops over a registry (docs, error messages, CLI) never depends on which module happened to load first.
        self._order: dict[str, int] = {}

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        self._order.setdefault(name, len(self._order))
        return item

    def register_class(self, cls: type[Any]) -> type[Any]:
        """Class decorator: one instance of ``cls`` available under ``cls.name`` (a reload replaces it)."""
        self.add(cls.name, cls(), replace=True)
        return cls

    def add_lazy(self, name: str, module: str) -> None:
        """Register ``name`` as provided by ``module`` (dotted path), imported the first time ``name`` is used."""
        if name not in self._items:
            self._lazy[name] = module
        self._order.setdefault(name, len(self._order))

    def remove(self, name: str) -> None:
        self._items.pop(name, None)
        self._lazy.pop(name, None)

    def _load(self, name: str) -> None:
        module = self._lazy.pop(name, None)
        if module is not None and name not in self._items:
            importlib.import_module(module)
            if name not in self._items:
                raise ValueError(f"module {module} did not register {self.kind} {name!r}")

    def get(self, name: str) -> T:
        self._load(name)
        try:
            return self._items[name]
        except KeyError:
            raise InputError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self.names()))}",
                             key=self.key) from None

    def find(self, name: str | None) -> T | None:
        if name in self._lazy:
            self._load(name)
        return self._items.get(name or "")

    def _ordered(self, names) -> list[str]:  # noqa: ANN001 - any iterable of names
        return sorted(dict.fromkeys(names), key=lambda n: self._order.get(n, len(self._order)))

    def names(self) -> tuple[str, ...]:
        return tuple(self._ordered([*self._items, *self._lazy]))

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self):  # names, in registration order
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        for name in list(self._lazy):
            self._load(name)
        return [(name, self._items[name]) for name in self._ordered(self._items)]

    def check(self, name: str) -> str:
        """``name`` if registered, else ValueError (for pydantic validators, which report it with the key)."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return name
