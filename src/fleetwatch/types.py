"""Small shared types: JSON aliases and a masking ``Secret``."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JSON", "JSONObject", "Secret"]

JSON: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]


class Secret:
    """A string that never shows itself in ``repr()``, ``str()`` or logs.

    Call :meth:`reveal` at the single place that needs the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
