"""Engine views and errors as JSON between processes, and back, attribute for attribute."""

from __future__ import annotations

import json

import pytest

import boxoffice as bo
import boxoffice.errors as bo_errors
from boxoffice_api.cluster.wire import (
    VIEW_TYPES,
    View,
    error_from_wire,
    error_to_wire,
    from_wire,
    to_wire,
)

T0 = 1_000.0


def same(view: object, original: object) -> None:
    """Every property of ``original`` is on ``view`` with an equal value (views nested)."""
    if isinstance(original, list):
        assert isinstance(view, list) and len(view) == len(original)
        for a, b in zip(view, original, strict=True):
            same(a, b)
        return
    if type(original).__name__ in VIEW_TYPES:
        assert isinstance(view, View) and view.view_type == type(original).__name__
        for name in dir(type(original)):
            if isinstance(getattr(type(original), name), property):
                same(getattr(view, name), getattr(original, name))
        return
    assert view == original


def roundtrip(value: object) -> object:
    return from_wire(json.loads(json.dumps(to_wire(value))))


def test_every_view_of_a_small_drop_comes_back_with_the_same_attributes() -> None:
    engine = bo.Engine()
    users = [engine.create_user(now=T0) for _ in range(3)]
    sale = bo.SaleSettings(queue_capacity=1, hold_ttl_s=60)
    concert = engine.create_concert(
        title="t",
        schedules=[bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 2, 4, "VIP", 50_000)])],
        sale=sale,
        now=T0,
    )
    active = engine.join_queue(users[0], concert.id, now=T0 + 1)
    waiting = engine.join_queue(users[1], concert.id, now=T0 + 1)
    charge = engine.charge(users[0], 200_000, now=T0 + 2)
    schedule = concert.schedules[0].id
    reservation = engine.hold(users[0], active.id, schedule, quantity=2, now=T0 + 3)
    payment = engine.pay(users[0], active.id, reservation.id, now=T0 + 4)
    values: list[object] = [
        concert,
        active,
        waiting,
        charge,
        reservation,
        payment,
        engine.seats(schedule, now=T0 + 5),
        engine.history(users[0], now=T0 + 5),
        engine.stats(concert.id, now=T0 + 5),
        engine.events(),
        engine.reservations(users[0], now=T0 + 5),
        [],
        None,
        7,
        "x",
    ]
    covered = set()
    for value in values:
        same(roundtrip(value), value)
        for item in value if isinstance(value, list) else [value]:
            covered.add(type(item).__name__)
    covered.add("Schedule")  # nested in the concert
    covered.add("SaleSettings")
    assert set(VIEW_TYPES) <= covered


def test_errors_come_back_as_the_same_class_with_their_details() -> None:
    engine = bo.Engine()
    users = [engine.create_user(now=T0) for _ in range(2)]
    concert = engine.create_concert(
        title="t",
        schedules=[bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 2, "VIP", 1)])],
        sale=bo.SaleSettings(queue_capacity=1),
        now=T0,
    )
    engine.join_queue(users[0], concert.id, now=T0)
    waiting = engine.join_queue(users[1], concert.id, now=T0)
    with pytest.raises(bo_errors.QueueNotActive) as info:
        engine.check_gate(users[1], waiting.id, concert.id, now=T0 + 1)
    back = error_from_wire(json.loads(json.dumps(error_to_wire(info.value))))
    assert type(back) is bo_errors.QueueNotActive
    assert (str(back), back.position, back.eta_s, back.retry_after_s) == (
        str(info.value),
        info.value.position,
        info.value.eta_s,
        info.value.retry_after_s,
    )
    unknown = error_from_wire({"code": "NO_SUCH_CODE", "message": "m"})
    assert type(unknown) is bo_errors.InternalError


def test_only_engine_views_cross() -> None:
    with pytest.raises(TypeError):
        to_wire(object())
    with pytest.raises(ValueError):
        from_wire({"__view__": "os.system", "x": 1})
    with pytest.raises(ValueError):
        from_wire({"id": 1})


def test_a_view_that_crossed_crosses_again_unchanged() -> None:
    engine = bo.Engine()
    engine.create_user(now=T0)
    concert = engine.create_concert(
        title="t", schedules=[bo.ScheduleSpec(2e9, [bo.SectionSpec("A", 1, 2, "R", 5)])], now=T0
    )
    once = to_wire(concert)
    assert to_wire(from_wire(once)) == once
