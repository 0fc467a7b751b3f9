"""Registries of definitions that live in code, not in the store.

Interaction kinds, case types and sequences are plain frozen data that
plugins register when a CRM opens (or code registers through the API); a
:class:`Registry` holds them by key.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from crmkit.core.errors import DuplicateError, ValidationError

__all__ = ["Registry"]


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


class Registry(Generic[K]):
    """Definitions of one type, by key, in registration order.

    Args:
        item_type: the definition class (``InteractionKind``...).
        what: its name in errors (``"interaction kind"``).
        field: the argument name that refers to one (``"kind"``).
    """

    def __init__(self, item_type: type[K], what: str, field: str):
        self._type = item_type
        self._what = what
        self._field = field
        self._items: dict[str, K] = {}

    def load(self, items: Iterable[K]) -> None:
        """Add definitions plugins registered (already checked for duplicates)."""
        for item in items:
            self._items[item.key] = item

    def register(self, item: K) -> K:
        """Add a definition through the API.

        Raises:
            ValidationError: not a definition of this type.
            DuplicateError: one with that key exists.
        """
        if not isinstance(item, self._type):
            raise ValidationError(
                self._field, f"must be a {self._type.__name__}", code="type", value=item
            )
        if item.key in self._items:
            raise DuplicateError(self._what, "key", item.key)
        self._items[item.key] = item
        return item

    def get(self, key: str) -> K:
        """The definition with ``key``.

        Raises:
            ValidationError: there is none (code ``reference``).
        """
        found = self._items.get(key) if isinstance(key, str) else None
        if found is None:
            raise ValidationError(
                self._field, f"there is no {self._what} with that key", code="reference", value=key
            )
        return found

    def keys(self) -> list[str]:
        """Every key, in registration order."""
        return list(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __repr__(self) -> str:
        return f"<Registry of {self._what}: {', '.join(self._items)}>"
