"""A named registry: how workloads, launchers and MPI flavours are found by the name an inventory or CLI uses."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from .exceptions import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name; an unknown name is one ``InputError`` listing the known ones."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        if name in self._items and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def register_class(self, cls: type[Any]) -> type[Any]:
        """Class decorator: one instance of ``cls`` available under ``cls.name`` (a reload replaces it)."""
        self.add(cls.name, cls(), replace=True)
        return cls

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise InputError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}",
                             key=self.key) from None

    def find(self, name: str | None) -> T | None:
        return self._items.get(name or "")

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __iter__(self):  # names, in registration order
        return iter(tuple(self._items))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def check(self, name: str) -> str:
        """``name`` if registered, else ValueError (for pydantic validators, which report it with the key)."""
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self._items)}")
        return name
