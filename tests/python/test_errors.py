"""The error tree: every code has a class; bad input is a clear error, never a crash."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import pytest

import boxoffice as bo
from boxoffice import _core, batch, errors

T0 = 1_000.0

# What the caller should do next (absl status code) -> the class every such error derives from.
FAMILY: dict[str, type[errors.BoxOfficeError]] = {
    "invalidargument": errors.InvalidArgument,
    "notfound": errors.NotFound,
    "failedprecondition": errors.Conflict,
    "resourceexhausted": errors.LimitExceeded,
    "permissiondenied": errors.PermissionDenied,
    "internal": errors.InternalError,
    "unavailable": errors.StoreError,
    "dataloss": errors.DataLoss,
}
CODES = sorted(name for name in _core.ERROR_CODES if name != "OK")


def family_key(absl_name: str) -> str:
    """'kNotFound', 'NOT_FOUND' or 'StatusCode.kNotFound' -> 'notfound'."""
    name = absl_name.rsplit(".", 1)[-1]
    if name.startswith("k") and name[1:2].isupper():
        name = name[1:]
    return name.replace("_", "").lower()


def test_every_documented_code_is_reported_by_the_core():
    documented = {
        "INVALID_ARGUMENT",
        "INVALID_AMOUNT",
        "TOO_MANY_SEATS",
        "IDEMPOTENCY_KEY_REUSED",
        "LIMIT_EXCEEDED",
        "USER_NOT_FOUND",
        "CONCERT_NOT_FOUND",
        "SCHEDULE_NOT_FOUND",
        "SEAT_NOT_FOUND",
        "SEAT_NOT_IN_RESERVATION",
        "RESERVATION_NOT_FOUND",
        "SEAT_UNAVAILABLE",
        "HOLD_EXPIRED",
        "RESERVATION_NOT_PENDING",
        "RESERVATION_NOT_CONFIRMED",
        "INSUFFICIENT_BALANCE",
        "BALANCE_LIMIT_EXCEEDED",
        "SEAT_LIMIT_PER_USER",
        "QUEUE_NOT_ACTIVE",
        "QUEUE_TOKEN_EXPIRED",
        "QUEUE_TOKEN_INVALID",
        "QUEUE_FULL",
        "INTERNAL",
    }
    assert documented <= set(CODES)


@pytest.mark.parametrize("code", CODES)
def test_every_code_has_a_class_with_the_same_code_and_http_status(code):
    _, http_status, _ = _core.ERROR_CODES[code]
    cls = errors.error_class(code)
    assert cls.code == code
    assert cls.http_status == http_status
    assert issubclass(cls, errors.BoxOfficeError)
    assert cls.__name__ in errors.__all__
    assert getattr(errors, cls.__name__) is cls


@pytest.mark.parametrize("code", CODES)
def test_every_code_belongs_to_the_family_of_its_status_code(code):
    absl_name, _, _ = _core.ERROR_CODES[code]
    # The durable store's errors form one family, whatever their status code.
    family = errors.StoreError if code.startswith("STORE_") else FAMILY[family_key(absl_name)]
    assert issubclass(errors.error_class(code), family)


def test_class_hierarchy_uses_the_fitting_builtins():
    cls: type[errors.BoxOfficeError]
    assert issubclass(errors.InvalidArgument, ValueError)
    for cls in (errors.InvalidAmount, errors.TooManySeats, errors.IdempotencyKeyReused):
        assert issubclass(cls, errors.InvalidArgument)
        assert issubclass(cls, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    for cls in (
        errors.UserNotFound,
        errors.ConcertNotFound,
        errors.ScheduleNotFound,
        errors.SeatNotFound,
        errors.SeatNotInReservation,
        errors.ReservationNotFound,
    ):
        assert issubclass(cls, errors.NotFound)
        assert issubclass(cls, LookupError)
        assert cls.http_status == 404
    for cls in (errors.Conflict, errors.LimitExceeded, errors.PermissionDenied):
        assert not issubclass(cls, (ValueError, LookupError))
    assert issubclass(errors.QueueTokenInvalid, errors.PermissionDenied)
    assert errors.error_class("NO_SUCH_CODE") is errors.InternalError


def test_batch_code_numbers_are_distinct_and_named():
    numbers = [value for _, _, value in _core.ERROR_CODES.values()]
    assert len(numbers) == len(set(numbers))
    for name, (_, _, value) in _core.ERROR_CODES.items():
        assert batch.ERROR_CODE_NAMES[value] == name
    if "OK" in _core.ERROR_CODES:
        assert _core.ERROR_CODES["OK"][2] == 0


def test_raised_errors_carry_code_status_and_message(drop):
    user = drop.user(now=T0)
    with pytest.raises(errors.BoxOfficeError) as info:
        drop.engine.charge(user, 0, now=T0)
    err = info.value
    assert type(err) is errors.InvalidAmount
    assert err.code == "INVALID_AMOUNT"
    assert err.http_status == 422
    assert err.message
    assert str(err).startswith("INVALID_AMOUNT")


def test_raised_errors_keep_their_details_through_pickle_and_copy(make_drop):
    drop = make_drop(queue_capacity=1)
    eng = drop.engine
    first, second = drop.user(now=T0), drop.user(now=T0)
    eng.join_queue(first, drop.concert_id, now=T0)
    waiting = eng.join_queue(second, drop.concert_id, now=T0)
    with pytest.raises(errors.QueueNotActive) as info:
        eng.check_gate(second, waiting.id, drop.concert_id, now=T0 + 1)
    err = info.value
    assert (err.position, err.seat_id) == (0, None)
    assert err.eta_s is not None and err.retry_after_s is not None
    err.note = "kept too"  # type: ignore[attr-defined]
    for back in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
        assert type(back) is errors.QueueNotActive
        assert str(back) == str(err)
        assert back.args == err.args == (err.message,)
        assert (back.position, back.eta_s, back.seat_id, back.retry_after_s) == (
            err.position,
            err.eta_s,
            err.seat_id,
            err.retry_after_s,
        )
        assert back.note == "kept too"  # type: ignore[attr-defined]


# --- time -------------------------------------------------------------------------------------


BAD_NOW = [math.nan, math.inf, -math.inf, -1.0, -1e-3, 1e11, 1e300]


@pytest.mark.parametrize("now", BAD_NOW)
def test_invalid_now_is_an_invalid_argument(drop, now):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    before = eng.state_hash()
    calls = [
        lambda: eng.create_user(now=now),
        lambda: eng.join_queue(user, drop.concert_id, now=now),
        lambda: eng.queue_status(user, token, now=now),
        lambda: eng.check_gate(user, token, drop.concert_id, now=now),
        lambda: eng.hold(user, token, drop.schedule_id, [1], now=now),
        lambda: eng.charge(user, 100, now=now),
        lambda: eng.advance(now=now),
        lambda: eng.seats(drop.schedule_id, now=now),
        lambda: eng.balance(user, now=now),
        lambda: eng.stats(drop.concert_id, now=now),
        lambda: drop.engine.create_concert(
            title="x", schedules=[bo.ScheduleSpec(T0, [bo.SectionSpec("A", 1, 1, "R", 1)])], now=now
        ),
    ]
    for call in calls:
        with pytest.raises(errors.InvalidArgument):
            call()
    assert eng.state_hash() == before
    assert eng.clock == T0


def test_zero_and_largest_now_are_valid(engine):
    engine.create_user(now=0.0)
    engine.create_user(now=1e11 - 1)
    assert engine.clock == pytest.approx(1e11 - 1)


def test_the_clock_never_goes_back(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    eng.advance(now=T0 + 50)
    # An older `now` acts at the engine's time, not in the past.
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 10)
    assert res.created_at == T0 + 50
    assert eng.clock == T0 + 50


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, -(2**63), 10**6, 2**63 - 1])
def test_unknown_or_negative_ids_are_not_found(drop, bad):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0)
    cases = [
        (errors.UserNotFound, lambda: eng.join_queue(bad, drop.concert_id, now=T0)),
        (errors.UserNotFound, lambda: eng.balance(bad, now=T0)),
        (errors.UserNotFound, lambda: eng.charge(bad, 100, now=T0)),
        (errors.UserNotFound, lambda: eng.hold(bad, token, drop.schedule_id, [2], now=T0)),
        (errors.ConcertNotFound, lambda: eng.join_queue(user, bad, now=T0)),
        (errors.ConcertNotFound, lambda: eng.concert(bad, now=T0)),
        (errors.ConcertNotFound, lambda: eng.schedules(bad, now=T0)),
        (errors.ConcertNotFound, lambda: eng.stats(bad, now=T0)),
        (errors.ScheduleNotFound, lambda: eng.seats(bad, now=T0)),
        (errors.ScheduleNotFound, lambda: eng.hold(user, token, bad, [2], now=T0)),
        (errors.SeatNotFound, lambda: eng.hold(user, token, drop.schedule_id, [bad], now=T0)),
        (errors.ReservationNotFound, lambda: eng.reservation(user, bad, now=T0)),
        (errors.ReservationNotFound, lambda: eng.cancel(user, bad, now=T0)),
        (errors.ReservationNotFound, lambda: eng.pay(user, token, bad, now=T0)),
        (errors.ReservationNotFound, lambda: eng.refund(user, bad, now=T0)),
        (errors.ReservationNotFound, lambda: eng.release_seat(user, bad, 1, now=T0)),
        (errors.SeatNotInReservation, lambda: eng.release_seat(user, res.id, bad, now=T0)),
        (errors.QueueTokenInvalid, lambda: eng.queue_status(user, bad, now=T0)),
        (errors.QueueTokenInvalid, lambda: eng.leave_queue(user, bad, now=T0)),
        (errors.QueueTokenInvalid, lambda: eng.check_gate(user, bad, drop.concert_id, now=T0)),
        (errors.QueueTokenInvalid, lambda: eng.hold(user, bad, drop.schedule_id, [2], now=T0)),
    ]
    for expected, call in cases:
        with pytest.raises(expected):
            call()


@pytest.mark.parametrize("huge", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_ids_outside_int64_are_refused_cleanly(drop, huge):
    eng = drop.engine
    user, _ = drop.admitted(now=T0)
    with pytest.raises((TypeError, OverflowError, errors.BoxOfficeError)):
        eng.balance(huge, now=T0)
    with pytest.raises((TypeError, OverflowError, errors.BoxOfficeError)):
        eng.charge(user, huge, now=T0)
    assert eng.balance(user, now=T0) == 0


def test_unknown_seat_status_filter_is_refused(drop):
    with pytest.raises((ValueError, TypeError)):
        drop.engine.seats(drop.schedule_id, "GONE", now=T0)


# --- catalog validation -----------------------------------------------------------------------


def section(**overrides):
    fields: dict[str, Any] = {
        "name": "A",
        "rows": 2,
        "seats_per_row": 3,
        "grade": "VIP",
        "price": 1_000,
    }
    fields.update(overrides)
    return bo.SectionSpec(
        fields["name"], fields["rows"], fields["seats_per_row"], fields["grade"], fields["price"]
    )


def create(engine, *, title="Show", sections=None, schedules=None, sale=None, **text):
    """Creates a concert; ``sections`` are override dicts for :func:`section`, ``sale`` a dict."""
    if schedules is None:
        specs = [section(**o) for o in sections] if sections is not None else [section()]
        schedules = [bo.ScheduleSpec(1.8e9, specs)]
    return engine.create_concert(
        title=title, schedules=schedules, sale=bo.SaleSettings(**(sale or {})), now=T0, **text
    )


INVALID_CONCERTS: dict[str, dict[str, Any]] = {
    "empty title": {"title": ""},
    "long title": {"title": "x" * 201},
    "long artist": {"artist": "x" * 201},
    "long venue": {"venue": "x" * 201},
    "no schedules": {"schedules": []},
    "no sections": {"sections": []},
    "empty section name": {"sections": [{"name": ""}]},
    "long section name": {"sections": [{"name": "n" * 201}]},
    "empty grade": {"sections": [{"grade": ""}]},
    "long grade": {"sections": [{"grade": "g" * 201}]},
    "zero rows": {"sections": [{"rows": 0}]},
    "negative rows": {"sections": [{"rows": -1}]},
    "zero seats per row": {"sections": [{"seats_per_row": 0}]},
    "zero price": {"sections": [{"price": 0}]},
    "negative price": {"sections": [{"price": -5}]},
    "zero capacity": {"sale": {"queue_capacity": 0}},
    "zero admission rate": {"sale": {"admission_per_minute": 0}},
    "zero session ttl": {"sale": {"session_ttl_s": 0.0}},
    "negative hold ttl": {"sale": {"hold_ttl_s": -1.0}},
    "nan hold ttl": {"sale": {"hold_ttl_s": math.nan}},
    "zero abandon timeout": {"sale": {"abandon_timeout_s": 0.0, "poll_interval_s": 0.0}},
    "zero poll interval": {"sale": {"poll_interval_s": 0.0}},
    "poll slower than abandon": {"sale": {"poll_interval_s": 61.0, "abandon_timeout_s": 60.0}},
    "zero seats per reservation": {"sale": {"max_seats_per_reservation": 0}},
    "zero seats per user": {"sale": {"max_seats_per_user": 0}},
    "negative opens_at": {"sale": {"opens_at": -1.0}},
    "nan opens_at": {"sale": {"opens_at": math.nan}},
}


# Above a named maximum is a limit (LIMIT_EXCEEDED), below the minimum a malformed request.
OVER_LIMIT_CONCERTS: dict[str, dict[str, Any]] = {
    "too many rows": {"sections": [{"rows": 1_001, "seats_per_row": 1}]},
    "too many seats per row": {"sections": [{"rows": 1, "seats_per_row": 1_001}]},
    "price above max": {"sections": [{"price": 10_000_001}]},
    "capacity above max": {"sale": {"queue_capacity": 1_000_001}},
    "admission rate too high": {"sale": {"admission_per_minute": 60_000_001}},
    "seats per reservation above max": {"sale": {"max_seats_per_reservation": 17}},
}


@pytest.mark.parametrize("case", sorted(INVALID_CONCERTS))
def test_invalid_concerts_are_refused_and_create_nothing(engine, case):
    with pytest.raises(errors.InvalidArgument) as info:
        create(engine, **INVALID_CONCERTS[case])
    assert info.value.code == "INVALID_ARGUMENT"
    assert engine.concerts(now=T0) == []
    assert engine.last_event_seq == 0
    # Ids stay dense: the next valid concert is concert 1 with schedule 1 and seat 1.
    concert = create(engine)
    assert concert.id == 1
    assert concert.schedules[0].id == 1
    assert engine.seats(1, now=T0)[0].id == 1


@pytest.mark.parametrize("case", sorted(OVER_LIMIT_CONCERTS))
def test_concerts_over_a_named_limit_are_refused_and_create_nothing(engine, case):
    with pytest.raises(errors.LimitExceeded) as info:
        create(engine, **OVER_LIMIT_CONCERTS[case])
    assert info.value.code == "LIMIT_EXCEEDED"
    assert engine.concerts(now=T0) == []
    assert engine.last_event_seq == 0
    assert create(engine).id == 1


def test_limits_on_the_seat_map_are_limit_exceeded(make_engine):
    eng = make_engine(
        schedules_per_concert_max=2, sections_per_schedule_max=2, seats_per_schedule_max=10
    )
    too_many_schedules = [bo.ScheduleSpec(1.8e9, [section()]) for _ in range(3)]
    with pytest.raises(errors.LimitExceeded) as info:
        create(eng, schedules=too_many_schedules)
    assert info.value.code == "LIMIT_EXCEEDED"
    with pytest.raises(errors.LimitExceeded):
        create(eng, sections=[{"name": n} for n in "ABC"])
    with pytest.raises(errors.LimitExceeded):
        create(eng, sections=[{"rows": 2, "seats_per_row": 3}, {"name": "B", "rows": 5}])
    assert eng.concerts(now=T0) == []
    # Exactly at every limit is fine.
    ok = create(
        eng,
        schedules=[
            bo.ScheduleSpec(
                1.8e9,
                [section(rows=2, seats_per_row=3), section(name="B", rows=1, seats_per_row=4)],
            )
        ]
        * 2,
    )
    assert [s.seats_total for s in ok.schedules] == [10, 10]


def test_concerts_max_and_users_max(make_engine):
    eng = make_engine(concerts_max=1, users_max=2)
    create(eng)
    with pytest.raises(errors.LimitExceeded):
        create(eng)
    # The text rules are checked first.
    with pytest.raises(errors.InvalidArgument):
        create(eng, title="")
    eng.create_user(now=T0)
    eng.create_user(now=T0)
    with pytest.raises(errors.LimitExceeded):
        eng.create_user(now=T0)
    assert len(eng.concerts(now=T0)) == 1
    with pytest.raises(errors.UserNotFound):
        eng.balance(3, now=T0)


def test_negative_quantity_and_amounts_never_crash(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.InvalidArgument):
        eng.hold(user, token, drop.schedule_id, quantity=-(2**31), now=T0)
    with pytest.raises((errors.BoxOfficeError, OverflowError, TypeError)):
        eng.hold(user, token, drop.schedule_id, quantity=2**40, now=T0)
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, -(2**63), now=T0)
    with pytest.raises(errors.InvalidAmount):
        eng.charge(user, 2**63 - 1, now=T0)
    assert eng.reservations(user, now=T0) == []
    assert eng.balance(user, now=T0) == 0
