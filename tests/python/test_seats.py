"""Browsing, seat maps, holds (explicit and best-available), release, expiry."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import pytest

import boxoffice as bo
from boxoffice import errors

T0 = 1_000.0
US = 1e-6

# The default seat map of the `drop` fixture, schedule by schedule:
#   A: 2 rows x 5 seats, VIP, 165,000 -> seats 1..10 (A-1-1 .. A-2-5)
#   B: 1 row x 4 seats, R, 99,000     -> seats 11..14 (B-1-1 .. B-1-4)
VIP = 165_000
R = 99_000
BEST_MAP = (bo.SectionSpec("A", 3, 5, "VIP", 100), bo.SectionSpec("B", 1, 6, "R", 50))
# Seats: A-1-1..A-1-5 = 1..5, A-2-* = 6..10, A-3-* = 11..15, B-1-1..B-1-6 = 16..21.


def labels(engine: bo.Engine, schedule_id: int, seat_ids: list[int], *, now: float) -> list[str]:
    by_id = {s.id: s.label for s in engine.seats(schedule_id, now=now)}
    return [by_id[i] for i in seat_ids]


# --- browse and seat map ---------------------------------------------------------------------


def test_seat_map_has_labels_grades_and_prices(make_drop):
    drop = make_drop(schedules=2)
    eng = drop.engine
    assert drop.concert.grades == ["VIP", "R"]
    assert [s.seats_total for s in drop.concert.schedules] == [14, 14]
    first, second = (s.id for s in drop.concert.schedules)
    seats = eng.seats(first, now=T0)
    assert [s.id for s in seats] == list(range(1, 15))
    assert [s.label for s in seats] == [f"A-{r}-{n}" for r in (1, 2) for n in range(1, 6)] + [
        f"B-1-{n}" for n in range(1, 5)
    ]
    assert [(s.section, s.row, s.number) for s in seats[:6]] == [
        ("A", 1, 1),
        ("A", 1, 2),
        ("A", 1, 3),
        ("A", 1, 4),
        ("A", 1, 5),
        ("A", 2, 1),
    ]
    assert {(s.grade, s.price) for s in seats[:10]} == {("VIP", VIP)}
    assert {(s.grade, s.price) for s in seats[10:]} == {("R", R)}
    assert {s.status for s in seats} == {"AVAILABLE"}
    assert {s.schedule_id for s in seats} == {first}
    assert [s.id for s in eng.seats(second, now=T0)] == list(range(15, 29))


def test_schedules_list_dates_with_free_seat_counts(make_drop):
    drop = make_drop(schedules=3)
    schedules = drop.engine.schedules(drop.concert_id, now=T0)
    assert [s.id for s in schedules] == [s.id for s in drop.concert.schedules]
    assert [s.starts_at for s in schedules] == [1.8e9, 1.8e9 + 86_400, 1.8e9 + 2 * 86_400]
    assert {s.concert_id for s in schedules} == {drop.concert_id}
    assert [(s.seats_total, s.seats_available, s.seats_held, s.seats_sold) for s in schedules] == [
        (14, 14, 0, 0)
    ] * 3


def test_browse_concerts_by_title_and_date(make_drop):
    make_drop(title="IU 2027 World Tour")
    make_drop(title="BTS Yet To Come", artist="BTS")
    eng = make_drop(title="Encore", artist="iu").engine
    # Title or artist, ASCII case-insensitive.
    found = eng.concerts("Iu", now=T0)
    assert sorted(c.title for c in found) == ["Encore", "IU 2027 World Tour"]
    assert [c.title for c in eng.concerts("yet to", now=T0)] == ["BTS Yet To Come"]
    assert eng.concerts("no such show", now=T0) == []
    assert len(eng.concerts(now=T0)) == 3
    assert len(eng.concerts(starts_from=1.8e9, starts_to=1.8e9, now=T0)) == 3
    assert eng.concerts(starts_from=1.8e9 + 1, now=T0) == []
    assert eng.concerts(starts_to=1.8e9 - 1, now=T0) == []
    concert = eng.concert(found[0].id, now=T0)
    assert concert.id == found[0].id
    assert concert.venue == "KSPO Dome"
    assert concert.artist == "IU"


def test_unknown_concert_and_schedule(drop):
    eng = drop.engine
    missing_concert = drop.concert_id + 100
    missing_schedule = drop.schedule_id + 100
    with pytest.raises(errors.ConcertNotFound):
        eng.concert(missing_concert, now=T0)
    with pytest.raises(errors.ConcertNotFound):
        eng.schedules(missing_concert, now=T0)
    with pytest.raises(errors.ConcertNotFound):
        eng.stats(missing_concert, now=T0)
    with pytest.raises(errors.ScheduleNotFound):
        eng.seats(missing_schedule, now=T0)
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.ScheduleNotFound):
        eng.hold(user, token, missing_schedule, [1], now=T0)
    # The schedule is checked before the gate.
    with pytest.raises(errors.ScheduleNotFound):
        eng.hold(user, token + 100, missing_schedule, [1], now=T0)


def test_seat_counts_and_status_filter_follow_holds_and_sales(drop):
    eng = drop.engine
    u1, t1 = drop.admitted(now=T0)
    u2, t2 = drop.funded(R, now=T0)
    eng.hold(u1, t1, drop.schedule_id, [1, 2], now=T0 + 1)
    res = eng.hold(u2, t2, drop.schedule_id, [11], now=T0 + 1)
    eng.pay(u2, t2, res.id, now=T0 + 2)
    schedule = eng.schedules(drop.concert_id, now=T0 + 3)[0]
    assert (schedule.seats_available, schedule.seats_held, schedule.seats_sold) == (11, 2, 1)
    assert [s.id for s in eng.seats(drop.schedule_id, "HELD", now=T0 + 3)] == [1, 2]
    assert [s.id for s in eng.seats(drop.schedule_id, "SOLD", now=T0 + 3)] == [11]
    available = eng.seats(drop.schedule_id, "AVAILABLE", now=T0 + 3)
    assert [s.id for s in available] == [3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]
    assert {s.status for s in available} == {"AVAILABLE"}
    stats = eng.stats(drop.concert_id, now=T0 + 3)
    assert (stats.seats_total, stats.seats_available, stats.seats_held, stats.seats_sold) == (
        14,
        11,
        2,
        1,
    )
    assert (stats.reservations_pending, stats.reservations_confirmed) == (1, 1)


def test_seat_pages_concatenate_to_the_whole_list(drop):
    eng = drop.engine
    u1, t1 = drop.admitted(now=T0)
    eng.hold(u1, t1, drop.schedule_id, [2, 5], now=T0 + 1)
    for status in (None, "AVAILABLE", "HELD"):
        whole = [s.id for s in eng.seats(drop.schedule_id, status, now=T0 + 2)]
        paged: list[int] = []
        after = 0
        while page := eng.seats(drop.schedule_id, status, after=after, limit=3, now=T0 + 2):
            assert len(page) <= 3
            paged += [s.id for s in page]
            after = page[-1].id
        assert paged == whole
    assert [
        s.id for s in eng.seats(drop.schedule_id, "AVAILABLE", after=1, limit=2, now=T0 + 2)
    ] == [3, 4]
    assert eng.seats(drop.schedule_id, limit=0, now=T0 + 2) == []
    with pytest.raises(errors.InvalidArgument):
        eng.seats(drop.schedule_id, limit=-1, now=T0 + 2)


# --- explicit holds -------------------------------------------------------------------------


def test_hold_creates_a_pending_reservation(make_drop):
    drop = make_drop(hold_ttl_s=300.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [12, 3], now=T0 + 10)
    assert res.status == "PENDING"
    assert res.user_id == user
    assert res.concert_id == drop.concert_id
    assert res.schedule_id == drop.schedule_id
    assert res.token_id == token
    assert res.seat_ids == [12, 3]
    assert res.amount == VIP + R
    assert res.created_at == T0 + 10
    assert res.expires_at == T0 + 310
    assert res.ended_at is None
    assert res.payment_id is None
    assert drop.seat_status(now=T0 + 11)[3] == "HELD"
    assert drop.seat_status(now=T0 + 11)[12] == "HELD"
    assert [r.id for r in eng.reservations(user, now=T0 + 11)] == [res.id]
    assert eng.reservation(user, res.id, now=T0 + 11).seat_ids == [12, 3]


def test_hold_is_all_or_nothing(drop):
    eng = drop.engine
    u1, t1 = drop.admitted(now=T0)
    u2, t2 = drop.admitted(now=T0)
    eng.hold(u1, t1, drop.schedule_id, [2], now=T0 + 1)
    before = eng.last_event_seq
    with pytest.raises(errors.SeatUnavailable) as info:
        eng.hold(u2, t2, drop.schedule_id, [1, 2, 3], now=T0 + 2)
    assert info.value.seat_id == 2
    assert info.value.code == "SEAT_UNAVAILABLE"
    assert info.value.http_status == 409
    status = drop.seat_status(now=T0 + 3)
    assert (status[1], status[2], status[3]) == ("AVAILABLE", "HELD", "AVAILABLE")
    assert eng.reservations(u2, now=T0 + 3) == []
    assert eng.last_event_seq == before
    with pytest.raises(errors.SeatNotFound):
        eng.hold(u2, t2, drop.schedule_id, [1, 999], now=T0 + 4)
    assert drop.seat_status(now=T0 + 4)[1] == "AVAILABLE"


def test_explicit_seats_are_checked_in_list_order(drop):
    eng = drop.engine
    u1, t1 = drop.admitted(now=T0)
    u2, t2 = drop.admitted(now=T0)
    eng.hold(u1, t1, drop.schedule_id, [2], now=T0 + 1)
    with pytest.raises(errors.SeatNotFound):
        eng.hold(u2, t2, drop.schedule_id, [999, 2], now=T0 + 2)
    with pytest.raises(errors.SeatUnavailable) as info:
        eng.hold(u2, t2, drop.schedule_id, [2, 999], now=T0 + 2)
    assert info.value.seat_id == 2


def test_seat_of_another_schedule_is_not_found(make_drop):
    drop = make_drop(schedules=2)
    user, token = drop.admitted(now=T0)
    other_schedule_seat = drop.seat_ids(1, now=T0)[0]
    with pytest.raises(errors.SeatNotFound):
        drop.engine.hold(user, token, drop.schedule_id, [other_schedule_seat], now=T0 + 1)
    with pytest.raises(errors.SeatNotFound):
        drop.engine.hold(user, token, drop.schedule_id, [0], now=T0 + 1)


def test_sold_seat_is_unavailable(drop):
    eng = drop.engine
    u1, t1 = drop.funded(VIP, now=T0)
    res = eng.hold(u1, t1, drop.schedule_id, [5], now=T0 + 1)
    eng.pay(u1, t1, res.id, now=T0 + 2)
    u2, t2 = drop.admitted(now=T0 + 3)
    with pytest.raises(errors.SeatUnavailable) as info:
        eng.hold(u2, t2, drop.schedule_id, [5], now=T0 + 4)
    assert info.value.seat_id == 5


def test_too_many_seats(make_drop):
    drop = make_drop(max_seats_per_reservation=2)
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.TooManySeats) as info:
        drop.engine.hold(user, token, drop.schedule_id, [1, 2, 3], now=T0 + 1)
    assert info.value.code == "TOO_MANY_SEATS"
    assert info.value.http_status == 422
    with pytest.raises(errors.TooManySeats):
        drop.engine.hold(user, token, drop.schedule_id, quantity=3, now=T0 + 1)
    # The count is checked before duplicates.
    with pytest.raises(errors.TooManySeats):
        drop.engine.hold(user, token, drop.schedule_id, [1, 1, 2], now=T0 + 1)
    assert {s.status for s in drop.engine.seats(drop.schedule_id, now=T0 + 2)} == {"AVAILABLE"}
    assert len(drop.engine.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 3).seat_ids) == 2


@pytest.mark.parametrize(
    ("seat_ids", "quantity", "grade"),
    [
        ([], 0, ""),  # neither seats nor a quantity
        (None, 0, ""),
        (None, -1, ""),
        ([1], 1, ""),  # both
        ([1], 0, "VIP"),  # grade only with a quantity
        ([1, 1], 0, ""),  # a seat twice
        (None, 1, "GOLD"),  # a grade the concert does not have
    ],
)
def test_malformed_hold_requests_are_invalid(drop, seat_ids, quantity, grade):
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.InvalidArgument) as info:
        drop.engine.hold(
            user, token, drop.schedule_id, seat_ids, quantity=quantity, grade=grade, now=T0 + 1
        )
    assert info.value.code == "INVALID_ARGUMENT"
    assert drop.engine.reservations(user, now=T0 + 1) == []


def test_hold_by_unknown_user(drop):
    _, token = drop.admitted(now=T0)
    with pytest.raises(errors.UserNotFound):
        drop.engine.hold(999, token, drop.schedule_id, [1], now=T0 + 1)


# --- release and cancel ---------------------------------------------------------------------


def test_release_one_seat_of_a_pending_reservation(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2, 11], now=T0 + 1)
    assert res.amount == 2 * VIP + R
    after = eng.release_seat(user, res.id, 2, now=T0 + 2)
    assert after.status == "PENDING"
    assert after.seat_ids == [1, 11]
    assert after.amount == VIP + R
    assert after.expires_at == res.expires_at
    status = drop.seat_status(now=T0 + 3)
    assert (status[1], status[2], status[11]) == ("HELD", "AVAILABLE", "HELD")
    released = [e for e in eng.events(0) if e.type == "SeatReleased"]
    assert [(e.reservation_id, e.value) for e in released] == [(res.id, 2)]
    # Someone else may take the released seat at once.
    other, other_token = drop.admitted(now=T0 + 3)
    assert eng.hold(other, other_token, drop.schedule_id, [2], now=T0 + 4).seat_ids == [2]


def test_releasing_the_last_seat_cancels_the_reservation(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 1)
    eng.release_seat(user, res.id, 1, now=T0 + 2)
    last = eng.release_seat(user, res.id, 2, now=T0 + 3)
    assert last.status == "CANCELED"
    assert last.ended_at == T0 + 3
    assert drop.seat_status(now=T0 + 4)[2] == "AVAILABLE"
    assert [e.reservation_id for e in eng.events(0) if e.type == "ReservationCanceled"] == [res.id]
    with pytest.raises(errors.ReservationNotPending):
        eng.release_seat(user, res.id, 2, now=T0 + 5)


def test_release_seat_errors(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    other, _ = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 1)
    with pytest.raises(errors.SeatNotInReservation):
        eng.release_seat(user, res.id, 3, now=T0 + 2)
    with pytest.raises(errors.ReservationNotFound):
        eng.release_seat(other, res.id, 1, now=T0 + 2)
    with pytest.raises(errors.ReservationNotFound):
        eng.release_seat(user, res.id + 100, 1, now=T0 + 2)
    with pytest.raises(errors.UserNotFound):
        eng.release_seat(other + 100, res.id, 1, now=T0 + 2)
    assert eng.reservation(user, res.id, now=T0 + 3).seat_ids == [1, 2]


def test_cancel_frees_every_seat(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [6, 7, 8], now=T0 + 1)
    canceled = eng.cancel(user, res.id, now=T0 + 2)
    assert canceled.status == "CANCELED"
    assert canceled.ended_at == T0 + 2
    assert {s.status for s in eng.seats(drop.schedule_id, now=T0 + 3)} == {"AVAILABLE"}
    assert eng.reservation(user, res.id, now=T0 + 3).status == "CANCELED"
    with pytest.raises(errors.ReservationNotPending):
        eng.cancel(user, res.id, now=T0 + 4)
    # A canceled hold does not expire later.
    eng.advance(now=T0 + 1_000)
    assert eng.reservation(user, res.id, now=T0 + 1_000).status == "CANCELED"
    assert not [e for e in eng.events(0) if e.type == "ReservationExpired"]


def test_cancel_someone_elses_or_unknown_reservation(drop):
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    other, _ = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    with pytest.raises(errors.ReservationNotFound) as info:
        eng.cancel(other, res.id, now=T0 + 2)
    assert info.value.http_status == 404
    with pytest.raises(errors.ReservationNotFound):
        eng.reservation(other, res.id, now=T0 + 2)
    with pytest.raises(errors.ReservationNotFound):
        eng.cancel(user, res.id + 1, now=T0 + 2)
    assert eng.reservation(user, res.id, now=T0 + 3).status == "PENDING"


def test_cancel_a_confirmed_reservation_is_refused(drop):
    eng = drop.engine
    user, token = drop.funded(VIP, now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1], now=T0 + 1)
    eng.pay(user, token, res.id, now=T0 + 2)
    with pytest.raises(errors.ReservationNotPending):
        eng.cancel(user, res.id, now=T0 + 3)
    with pytest.raises(errors.ReservationNotPending):
        eng.release_seat(user, res.id, 1, now=T0 + 3)
    assert drop.seat_status(now=T0 + 4)[1] == "SOLD"


# --- expiry ---------------------------------------------------------------------------------


def test_hold_expires_exactly_at_created_plus_ttl_seen_by_a_query(make_drop):
    drop = make_drop(hold_ttl_s=300.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 10)
    assert res.expires_at == T0 + 310
    assert [s.status for s in eng.seats(drop.schedule_id, now=T0 + 310 - US)][:3] == [
        "HELD",
        "HELD",
        "AVAILABLE",
    ]
    assert eng.schedules(drop.concert_id, now=T0 + 310 - US)[0].seats_held == 2
    # No advance() call: the query itself must see the hold gone at expires_at.
    assert [s.status for s in eng.seats(drop.schedule_id, now=T0 + 310)][:2] == [
        "AVAILABLE",
        "AVAILABLE",
    ]
    expired = eng.reservation(user, res.id, now=T0 + 310)
    assert expired.status == "EXPIRED"
    assert expired.ended_at == T0 + 310
    events = [e for e in eng.events(0) if e.type == "ReservationExpired"]
    assert [(e.reservation_id, e.at) for e in events] == [(res.id, T0 + 310)]


def test_expiry_is_seen_by_any_first_read(make_drop):
    drop = make_drop(hold_ttl_s=60.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [3], now=T0)
    assert eng.reservation(user, res.id, now=T0 + 60 - US).status == "PENDING"
    assert eng.reservations(user, now=T0 + 60)[0].status == "EXPIRED"
    assert eng.stats(drop.concert_id, now=T0 + 60).seats_held == 0


def test_expired_hold_is_reservable_by_another_and_unpayable_by_its_owner(make_drop):
    drop = make_drop(hold_ttl_s=300.0, session_ttl_s=3600.0)
    eng = drop.engine
    owner, owner_token = drop.funded(VIP, now=T0)
    res = eng.hold(owner, owner_token, drop.schedule_id, [4], now=T0)
    rival, rival_token = drop.admitted(now=T0 + 1)
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(rival, rival_token, drop.schedule_id, [4], now=T0 + 300 - US)
    # The first command at expires_at sees the seat free.
    taken = eng.hold(rival, rival_token, drop.schedule_id, [4], now=T0 + 300)
    assert taken.seat_ids == [4]
    with pytest.raises(errors.HoldExpired) as info:
        eng.pay(owner, owner_token, res.id, now=T0 + 301)
    assert info.value.code == "HOLD_EXPIRED"
    assert info.value.http_status == 409
    with pytest.raises(errors.HoldExpired):
        eng.cancel(owner, res.id, now=T0 + 302)
    with pytest.raises(errors.HoldExpired):
        eng.release_seat(owner, res.id, 4, now=T0 + 302)
    assert eng.balance(owner, now=T0 + 303) == VIP
    assert eng.reservation(owner, res.id, now=T0 + 303).status == "EXPIRED"
    assert drop.seat_status(now=T0 + 303)[4] == "HELD"


def test_expired_hold_is_unpayable_even_when_nobody_else_took_the_seat(make_drop):
    drop = make_drop(hold_ttl_s=300.0, session_ttl_s=3600.0)
    eng = drop.engine
    owner, token = drop.funded(VIP, now=T0)
    res = eng.hold(owner, token, drop.schedule_id, [4], now=T0)
    with pytest.raises(errors.HoldExpired):
        eng.pay(owner, token, res.id, now=T0 + 300)
    assert eng.balance(owner, now=T0 + 301) == VIP
    assert drop.seat_status(now=T0 + 301)[4] == "AVAILABLE"


# --- best-available -------------------------------------------------------------------------


def best(drop, user, token, quantity, grade="", *, now):
    res = drop.engine.hold(user, token, drop.schedule_id, quantity=quantity, grade=grade, now=now)
    return res.seat_ids


def test_best_available_takes_adjacent_seats_from_the_front_left(make_drop):
    drop = make_drop(sections=BEST_MAP)
    user, token = drop.admitted(now=T0)
    seats = best(drop, user, token, 3, now=T0 + 1)
    assert seats == [1, 2, 3]
    assert labels(drop.engine, drop.schedule_id, seats, now=T0 + 1) == ["A-1-1", "A-1-2", "A-1-3"]
    res = drop.engine.reservations(user, now=T0 + 1)[0]
    assert res.amount == 300


def test_best_available_leaves_no_single_orphan_seat(make_drop):
    drop = make_drop(sections=BEST_MAP)
    eng = drop.engine
    other, other_token = drop.admitted(now=T0)
    eng.hold(other, other_token, drop.schedule_id, [4, 5], now=T0)
    user, token = drop.admitted(now=T0)
    # Row 1 has a run of 3: taking 2 would strand one seat, so row 2 is used.
    assert best(drop, user, token, 2, now=T0 + 1) == [6, 7]
    # Row 1 still fits 3 exactly.
    assert best(drop, user, token, 3, now=T0 + 2) == [1, 2, 3]


def test_best_available_uses_runs_split_by_taken_seats(make_drop):
    drop = make_drop(sections=BEST_MAP)
    eng = drop.engine
    other, other_token = drop.admitted(now=T0)
    eng.hold(other, other_token, drop.schedule_id, [3], now=T0)
    user, token = drop.admitted(now=T0)
    # Runs [1, 2] and [4, 5]: a pair fills the first exactly.
    assert best(drop, user, token, 2, now=T0 + 1) == [1, 2]
    # Now only [4, 5] is left in row 1: one seat there would orphan the other.
    assert best(drop, user, token, 1, now=T0 + 2) == [6]


def test_best_available_accepts_an_orphan_only_when_unavoidable(make_drop):
    drop = make_drop(sections=(bo.SectionSpec("A", 2, 5, "VIP", 100),))
    user, token = drop.admitted(now=T0)
    # Every row is a run of 5: any block of 4 leaves one seat; the first run wins, from the left.
    assert best(drop, user, token, 4, now=T0 + 1) == [1, 2, 3, 4]


def test_best_available_by_grade(make_drop):
    drop = make_drop(sections=BEST_MAP)
    user, token = drop.admitted(now=T0)
    r_seats = best(drop, user, token, 2, "R", now=T0 + 1)
    assert r_seats == [16, 17]
    assert labels(drop.engine, drop.schedule_id, r_seats, now=T0 + 1) == ["B-1-1", "B-1-2"]
    assert best(drop, user, token, 2, "VIP", now=T0 + 2) == [1, 2]
    res = drop.engine.reservations(user, now=T0 + 2)
    assert [r.amount for r in res] == [100, 200]


def test_best_available_finds_nothing_when_no_block_fits(make_drop):
    drop = make_drop(sections=(bo.SectionSpec("A", 2, 3, "VIP", 100),))
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(user, token, drop.schedule_id, quantity=4, now=T0 + 1)
    eng.hold(user, token, drop.schedule_id, [2, 5], now=T0 + 2)
    with pytest.raises(errors.SeatUnavailable):
        eng.hold(user, token, drop.schedule_id, quantity=2, now=T0 + 3)
    assert [r.seat_ids for r in eng.reservations(user, now=T0 + 3)] == [[2, 5]]


# --- per-user limit -------------------------------------------------------------------------


def test_max_seats_per_user_counts_held_and_sold_seats_across_schedules(make_drop):
    drop = make_drop(schedules=2, max_seats_per_user=3, max_seats_per_reservation=4)
    eng = drop.engine
    other_schedule = drop.concert.schedules[1].id
    user, token = drop.funded(10 * VIP, now=T0)
    first = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0 + 1)
    with pytest.raises(errors.SeatLimitPerUser) as info:
        eng.hold(user, token, other_schedule, [15, 16], now=T0 + 2)
    assert info.value.code == "SEAT_LIMIT_PER_USER"
    assert info.value.http_status == 409
    with pytest.raises(errors.SeatLimitPerUser):
        eng.hold(user, token, other_schedule, quantity=2, now=T0 + 2)
    third = eng.hold(user, token, other_schedule, [15], now=T0 + 3)
    with pytest.raises(errors.SeatLimitPerUser):
        eng.hold(user, token, drop.schedule_id, [3], now=T0 + 4)
    # Releasing a seat gives room for one more.
    eng.release_seat(user, first.id, 2, now=T0 + 5)
    eng.hold(user, token, drop.schedule_id, [3], now=T0 + 6)
    # Sold seats count too.
    eng.pay(user, token, third.id, now=T0 + 7)
    token = eng.join_queue(user, drop.concert_id, now=T0 + 8).id
    with pytest.raises(errors.SeatLimitPerUser):
        eng.hold(user, token, drop.schedule_id, [4], now=T0 + 9)
    # Another user is not affected.
    other, other_token = drop.admitted(now=T0 + 10)
    assert len(eng.hold(other, other_token, drop.schedule_id, [4, 5, 6], now=T0 + 11).seat_ids) == 3


def test_per_user_limit_is_checked_before_the_seats(make_drop):
    drop = make_drop(max_seats_per_user=1)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    with pytest.raises(errors.SeatLimitPerUser):
        eng.hold(user, token, drop.schedule_id, [1, 999], now=T0 + 1)


def test_expired_and_canceled_holds_free_the_per_user_allowance(make_drop):
    drop = make_drop(max_seats_per_user=2, hold_ttl_s=60.0)
    eng = drop.engine
    user, token = drop.admitted(now=T0)
    res = eng.hold(user, token, drop.schedule_id, [1, 2], now=T0)
    with pytest.raises(errors.SeatLimitPerUser):
        eng.hold(user, token, drop.schedule_id, [3], now=T0 + 1)
    eng.cancel(user, res.id, now=T0 + 2)
    eng.hold(user, token, drop.schedule_id, [3, 4], now=T0 + 3)
    # That hold expires at T0 + 63.
    assert len(eng.hold(user, token, drop.schedule_id, [5, 6], now=T0 + 63).seat_ids) == 2


def test_per_user_limit_is_per_concert(make_drop):
    first = make_drop(title="first", max_seats_per_user=1)
    second = make_drop(title="second", max_seats_per_user=1)
    eng = first.engine
    user, t1 = first.admitted(now=T0)
    t2 = eng.join_queue(user, second.concert_id, now=T0).id
    eng.hold(user, t1, first.schedule_id, [1], now=T0 + 1)
    seat = second.seat_ids(now=T0 + 1)[0]
    assert eng.hold(user, t2, second.schedule_id, [seat], now=T0 + 2).seat_ids == [seat]
