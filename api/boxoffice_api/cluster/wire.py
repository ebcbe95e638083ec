"""Reads between processes: the engine's views and errors as JSON, and back.

A replica answers a read (``concert``, ``reservation``, ``balance``, ...) with the engine's
answer; a worker needs the same object to build the same HTTP response. Views cross as
JSON objects of their properties (``{"__view__": "Reservation", "id": 7, ...}``, nested
views and lists included) and come back as :class:`View` objects with the same attributes,
so the HTTP schemas' ``from_attributes`` validation reads them exactly like the engine's.
Errors cross as ``{"code", "message", details}`` and come back as the same
:class:`boxoffice.errors.BoxOfficeError` subclass. Nothing executable ever crosses (no pickle).
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import boxoffice as bo
import boxoffice.errors as bo_errors

VIEW_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        bo.Concert,
        bo.Schedule,
        bo.SaleSettings,
        bo.Seat,
        bo.QueueToken,
        bo.Reservation,
        bo.Payment,
        bo.Charge,
        bo.HistoryEntry,
        bo.ConcertStats,
        bo.Event,
    )
}
"""The engine's view classes that may cross, by name."""

_FIELDS: dict[type, list[str]] = {
    cls: [name for name, member in inspect.getmembers(cls) if isinstance(member, property)]
    for cls in VIEW_TYPES.values()
}
_DETAILS = ("position", "eta_s", "seat_id", "retry_after_s")


class View(SimpleNamespace):
    """An engine view rebuilt from its JSON: the same attributes, read-only by convention.

    Attributes:
        view_type: the engine class it stands for (``"Reservation"``).
    """

    view_type: str


def to_wire(value: Any) -> Any:
    """``value`` (an engine view or a :class:`View`, a list of them, or a plain number,
    string, bool or None) as JSON-ready data.

    Raises:
        TypeError: a value of another type.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if isinstance(value, View):  # a view that crossed once crosses again unchanged
        out_view: dict[str, Any] = {"__view__": value.view_type}
        for name, item in vars(value).items():
            if name != "view_type":
                out_view[name] = to_wire(item)
        return out_view
    fields = _FIELDS.get(type(value))
    if fields is None:
        raise TypeError(f"not an engine view: {type(value).__name__}")
    out: dict[str, Any] = {"__view__": type(value).__name__}
    for name in fields:
        out[name] = to_wire(getattr(value, name))
    return out


def from_wire(data: Any) -> Any:
    """The value :func:`to_wire` made, with views as :class:`View` objects.

    Raises:
        ValueError: an object that names no known view.
    """
    if isinstance(data, list):
        return [from_wire(item) for item in data]
    if isinstance(data, dict):
        name = data.get("__view__")
        if name not in VIEW_TYPES:
            raise ValueError(f"not an engine view: {name!r}")
        fields = {k: from_wire(v) for k, v in data.items() if k != "__view__"}
        return View(view_type=name, **fields)
    return data


def error_to_wire(error: bo_errors.BoxOfficeError) -> dict[str, Any]:
    """A boxoffice error as ``{"code", "message", position, eta_s, seat_id, retry_after_s}``
    (details that are None are left out)."""
    out: dict[str, Any] = {"code": error.code, "message": error.message}
    for name in _DETAILS:
        detail = getattr(error, name, None)
        if detail is not None:
            out[name] = detail
    return out


def error_from_wire(data: dict[str, Any]) -> bo_errors.BoxOfficeError:
    """The error :func:`error_to_wire` described: the class of its code (``InternalError``
    for an unknown code), its message and details."""
    cls = bo_errors.error_class(str(data.get("code", "INTERNAL")))
    details = {name: data[name] for name in _DETAILS if data.get(name) is not None}
    return cls(str(data.get("message", "")), **details)
