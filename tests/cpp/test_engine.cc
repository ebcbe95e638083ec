// Tests of Engine: the full flows of docs/engine-rules.md through the public
// commands and queries, as a user of the library would see them.
//
// Concert creation and its validation, queue join/admission/gate, holds
// (explicit and best-available) with their error order, exact hold expiry,
// cancel, release of one seat, charge/pay/refund with the ledger and history,
// the payment-failure policy, idempotency keys, the event journal, the state
// hash (determinism), invariants after a random drop, the batch interface and
// a clock that never goes back.
#include "boxoffice/engine.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "boxoffice/errors.h"

namespace boxoffice {
namespace {

constexpr TimeUs kT0 = 1'700'000'000LL * kMicrosPerSecond;
constexpr DurationUs Sec(int64_t s) { return s * kMicrosPerSecond; }
constexpr TimeUs kStartsAt = 1'800'000'000LL * kMicrosPerSecond;

std::string CodeName(ErrorCode c) { return std::string(GetErrorInfo(c).name); }
std::string Code(const absl::Status& s) { return CodeName(GetErrorCode(s)); }
template <typename T>
std::string Code(const absl::StatusOr<T>& r) {
  return Code(r.status());
}
std::string Name(TokenStatus s) { return std::string(ToString(s)); }
std::string Name(TokenEnd e) { return std::string(ToString(e)); }
std::string Name(SeatStatus s) { return std::string(ToString(s)); }
std::string Name(ReservationStatus s) { return std::string(ToString(s)); }
std::string Name(PaymentStatus s) { return std::string(ToString(s)); }
std::string Name(EventType t) { return std::string(ToString(t)); }

#define REQUIRE_OK(expr)                                  \
  do {                                                    \
    const auto& require_ok_result_ = (expr);              \
    INFO(#expr << " -> " << require_ok_result_.status()); \
    REQUIRE(require_ok_result_.ok());                     \
  } while (false)

SectionSpec Section(std::string name, int64_t rows, int64_t seats_per_row, std::string grade,
                    Won price) {
  SectionSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.seats_per_row = seats_per_row;
  s.grade = std::move(grade);
  s.price = price;
  return s;
}

// Two schedules, each: A = 2 rows x 5 VIP at 100,000 (seats 1..10 in the
// first schedule), B = 1 row x 5 R at 50,000 (seats 11..15). The second
// schedule has seats 16..30.
ConcertSpec SmallConcert() {
  ConcertSpec spec;
  spec.title = "IU 2027 World Tour";
  spec.artist = "IU";
  spec.venue = "KSPO Dome";
  for (int i = 0; i < 2; ++i) {
    ScheduleSpec s;
    s.starts_at = kStartsAt + Sec(86'400) * i;
    s.sections = {Section("A", 2, 5, "VIP", 100'000), Section("B", 1, 5, "R", 50'000)};
    spec.schedules.push_back(s);
  }
  return spec;
}

// One engine with one concert, ready for users.
class Drop {
 public:
  explicit Drop(const SaleSettings& sale = SaleSettings{}, EngineConfig config = EngineConfig{})
      : engine(config) {
    ConcertSpec spec = SmallConcert();
    spec.sale = sale;
    absl::StatusOr<ConcertView> c = engine.CreateConcert(spec, kT0);
    REQUIRE_OK(c);
    concert = c->id;
    schedule = c->schedules.at(0).id;
    schedule2 = c->schedules.at(1).id;
  }

  UserId NewUser(TimeUs now = kT0) {
    absl::StatusOr<UserId> u = engine.CreateUser(now);
    REQUIRE_OK(u);
    return *u;
  }
  TokenView Join(UserId user, TimeUs now) {
    absl::StatusOr<TokenView> t = engine.JoinQueue(user, concert, now);
    REQUIRE_OK(t);
    return *t;
  }
  // A new user with an ACTIVE token.
  std::pair<UserId, TokenId> ActiveUser(TimeUs now = kT0) {
    const UserId u = NewUser(now);
    const TokenView t = Join(u, now);
    REQUIRE(Name(t.status) == "ACTIVE");
    return {u, t.id};
  }
  absl::StatusOr<Reservation> Hold(UserId user, TokenId token, std::vector<SeatId> seats,
                                   TimeUs now, std::string key = "") {
    HoldRequest r;
    r.user_id = user;
    r.token_id = token;
    r.schedule_id = schedule;
    r.seat_ids = std::move(seats);
    r.idempotency_key = std::move(key);
    return engine.Hold(r, now);
  }
  absl::StatusOr<Reservation> HoldBest(UserId user, TokenId token, int64_t quantity,
                                       std::string grade, TimeUs now) {
    HoldRequest r;
    r.user_id = user;
    r.token_id = token;
    r.schedule_id = schedule;
    r.quantity = quantity;
    r.grade = std::move(grade);
    return engine.Hold(r, now);
  }
  SeatStatus SeatState(SeatId seat, TimeUs now, ScheduleId in = 0) {
    absl::StatusOr<std::vector<SeatView>> seats =
        engine.ListSeats(in == 0 ? schedule : in, std::nullopt, now);
    REQUIRE_OK(seats);
    for (const SeatView& s : *seats) {
      if (s.id == seat) return s.status;
    }
    FAIL("seat " << seat << " not listed");
    return SeatStatus::kAvailable;
  }
  Reservation Get(UserId user, ReservationId id, TimeUs now) {
    absl::StatusOr<Reservation> r = engine.GetReservation(user, id, now);
    REQUIRE_OK(r);
    return *r;
  }
  TokenView Status(UserId user, TokenId token, TimeUs now) {
    absl::StatusOr<TokenView> t = engine.QueueStatus(user, token, now);
    REQUIRE_OK(t);
    return *t;
  }
  Won BalanceOf(UserId user, TimeUs now) {
    absl::StatusOr<Won> b = engine.Balance(user, now);
    REQUIRE_OK(b);
    return *b;
  }
  void Charge(UserId user, Won amount, TimeUs now) {
    REQUIRE_OK(engine.Charge(user, amount, "", now));
  }
  std::vector<Event> EventsSince(Seq after) { return engine.EventsAfter(after, 1'000'000); }
  std::vector<std::string> EventNamesSince(Seq after) {
    std::vector<std::string> out;
    for (const Event& e : EventsSince(after)) out.push_back(Name(e.type));
    return out;
  }
  void CheckInvariants() {
    const absl::Status s = engine.CheckInvariants();
    INFO(s.ToString());
    CHECK(s.ok());
  }

  Engine engine;
  ConcertId concert = 0;
  ScheduleId schedule = 0;
  ScheduleId schedule2 = 0;
};

std::vector<SeatId> Ids(const SeatList& seats) {
  return std::vector<SeatId>(seats.begin(), seats.end());
}

// ---------------------------------------------------------------------------
// Catalog

TEST_CASE("users get dense ids from 1", "[engine][catalog]") {
  Engine engine;
  for (UserId expected = 1; expected <= 5; ++expected) {
    absl::StatusOr<UserId> u = engine.CreateUser(kT0);
    REQUIRE_OK(u);
    CHECK(*u == expected);
  }
  const std::vector<Event> events = engine.EventsAfter(0, 100);
  REQUIRE(events.size() == 5);
  for (size_t i = 0; i < events.size(); ++i) {
    CHECK(Name(events[i].type) == "UserCreated");
    CHECK(events[i].user_id == static_cast<UserId>(i + 1));
    CHECK(events[i].seq == static_cast<Seq>(i + 1));
  }
}

TEST_CASE("users_max is enforced", "[engine][catalog]") {
  EngineConfig config;
  config.limits.users_max = 2;
  Engine engine(config);
  REQUIRE_OK(engine.CreateUser(kT0));
  REQUIRE_OK(engine.CreateUser(kT0));
  CHECK(Code(engine.CreateUser(kT0)) == "LIMIT_EXCEEDED");
}

TEST_CASE("a concert gets dense global ids for schedules and seats, labels and grades",
          "[engine][catalog]") {
  Engine engine;
  absl::StatusOr<ConcertView> first = engine.CreateConcert(SmallConcert(), kT0);
  REQUIRE_OK(first);
  CHECK(first->id == 1);
  CHECK(first->title == "IU 2027 World Tour");
  CHECK(first->artist == "IU");
  CHECK(first->venue == "KSPO Dome");
  CHECK(first->created_at == kT0);
  CHECK(first->grades == std::vector<std::string>{"VIP", "R"});
  REQUIRE(first->schedules.size() == 2);
  CHECK(first->schedules[0].id == 1);
  CHECK(first->schedules[1].id == 2);
  CHECK(first->schedules[0].starts_at == kStartsAt);
  CHECK(first->schedules[0].seats_total == 15);
  CHECK(first->schedules[0].seats_available == 15);

  ConcertSpec spec;
  spec.title = "Second";
  spec.artist = "Someone";
  spec.venue = "Hall";
  ScheduleSpec s1;
  s1.starts_at = kStartsAt;
  s1.sections = {Section("Floor", 1, 3, "R", 10), Section("Balcony", 2, 2, "S", 5)};
  ScheduleSpec s2;
  s2.starts_at = kStartsAt + Sec(3'600);
  s2.sections = {Section("Floor", 1, 2, "VIP", 20), Section("Box", 1, 1, "R", 30)};
  spec.schedules = {s1, s2};
  absl::StatusOr<ConcertView> second = engine.CreateConcert(spec, kT0);
  REQUIRE_OK(second);
  CHECK(second->id == 2);
  CHECK(second->grades == std::vector<std::string>{"R", "S", "VIP"});
  REQUIRE(second->schedules.size() == 2);
  CHECK(second->schedules[0].id == 3);
  CHECK(second->schedules[1].id == 4);
  CHECK(second->schedules[0].seats_total == 7);

  // Seats of the first concert are 1..30; the third schedule starts at 31.
  absl::StatusOr<std::vector<SeatView>> seats = engine.ListSeats(3, std::nullopt, kT0);
  REQUIRE_OK(seats);
  REQUIRE(seats->size() == 7);
  const std::vector<std::string> labels = {"Floor-1-1",   "Floor-1-2",   "Floor-1-3",
                                           "Balcony-1-1", "Balcony-1-2", "Balcony-2-1",
                                           "Balcony-2-2"};
  for (size_t i = 0; i < seats->size(); ++i) {
    const SeatView& v = (*seats)[i];
    INFO("seat index " << i);
    CHECK(v.id == 31 + static_cast<SeatId>(i));
    CHECK(v.schedule_id == 3);
    CHECK(v.label == labels[i]);
    CHECK(Name(v.status) == "AVAILABLE");
  }
  CHECK((*seats)[5].section == "Balcony");
  CHECK((*seats)[5].row == 2);
  CHECK((*seats)[5].number == 1);
  CHECK((*seats)[5].grade == "S");
  CHECK((*seats)[5].price == 5);

  absl::StatusOr<std::vector<SeatView>> last = engine.ListSeats(4, std::nullopt, kT0);
  REQUIRE_OK(last);
  REQUIRE(last->size() == 3);
  CHECK(last->front().id == 38);
  CHECK(last->back().label == "Box-1-1");

  absl::StatusOr<ConcertView> got = engine.GetConcert(2, kT0);
  REQUIRE_OK(got);
  CHECK(got->title == "Second");
  CHECK(Code(engine.GetConcert(3, kT0)) == "CONCERT_NOT_FOUND");
  CHECK(Code(engine.ListSchedules(9, kT0)) == "CONCERT_NOT_FOUND");
  CHECK(Code(engine.ListSeats(5, std::nullopt, kT0)) == "SCHEDULE_NOT_FOUND");
  CHECK(Code(engine.ListSeats(0, std::nullopt, kT0)) == "SCHEDULE_NOT_FOUND");

  int64_t created = 0;
  for (const Event& e : engine.EventsAfter(0, 100)) {
    created += e.type == EventType::kConcertCreated ? 1 : 0;
  }
  CHECK(created == 2);
}

TEST_CASE("ListConcerts filters by title or artist (case-insensitive) and by date",
          "[engine][catalog]") {
  Engine engine;
  REQUIRE_OK(engine.CreateConcert(SmallConcert(), kT0));  // IU, kStartsAt and +1 day
  ConcertSpec other = SmallConcert();
  other.title = "Spring Jazz Night";
  other.artist = "Trio";
  other.schedules.resize(1);
  other.schedules[0].starts_at = kStartsAt + Sec(30 * 86'400);
  REQUIRE_OK(engine.CreateConcert(other, kT0));

  CHECK(engine.ListConcerts("", std::nullopt, std::nullopt, kT0).size() == 2);
  auto by_title = engine.ListConcerts("world TOUR", std::nullopt, std::nullopt, kT0);
  REQUIRE(by_title.size() == 1);
  CHECK(by_title[0].id == 1);
  auto by_artist = engine.ListConcerts("trio", std::nullopt, std::nullopt, kT0);
  REQUIRE(by_artist.size() == 1);
  CHECK(by_artist[0].id == 2);
  CHECK(engine.ListConcerts("nobody", std::nullopt, std::nullopt, kT0).empty());

  auto early = engine.ListConcerts("", std::nullopt, kStartsAt + Sec(86'400), kT0);
  REQUIRE(early.size() == 1);
  CHECK(early[0].id == 1);
  auto late = engine.ListConcerts("", kStartsAt + Sec(2 * 86'400), std::nullopt, kT0);
  REQUIRE(late.size() == 1);
  CHECK(late[0].id == 2);
  // Bounds are inclusive.
  CHECK(engine.ListConcerts("", kStartsAt + Sec(86'400), kStartsAt + Sec(86'400), kT0).size() ==
        1);
}

struct BadSpec {
  std::string what;
  std::function<void(ConcertSpec&)> mutate;
  std::set<std::string> codes;  // acceptable codes (one, unless the rules leave it open)
};

TEST_CASE("CreateConcert validates everything and creates nothing on error",
          "[engine][catalog]") {
  const std::string too_long(201, 'x');
  const std::set<std::string> invalid = {"INVALID_ARGUMENT"};
  const std::set<std::string> limit = {"LIMIT_EXCEEDED"};
  // Above a named maximum of an input field the rules do not pin the code.
  const std::set<std::string> above_max = {"INVALID_ARGUMENT", "LIMIT_EXCEEDED"};
  const std::vector<BadSpec> cases = {
      {"empty title", [](ConcertSpec& c) { c.title = ""; }, invalid},
      {"long title", [&](ConcertSpec& c) { c.title = too_long; }, invalid},
      {"long artist", [&](ConcertSpec& c) { c.artist = too_long; }, invalid},
      {"long venue", [&](ConcertSpec& c) { c.venue = too_long; }, invalid},
      {"long section name",
       [&](ConcertSpec& c) { c.schedules[1].sections[0].name = too_long; }, invalid},
      {"long grade", [&](ConcertSpec& c) { c.schedules[1].sections[1].grade = too_long; },
       invalid},
      {"no schedules", [](ConcertSpec& c) { c.schedules.clear(); }, invalid},
      {"too many schedules",
       [](ConcertSpec& c) { c.schedules.resize(257, c.schedules[0]); }, limit},
      {"schedule without sections", [](ConcertSpec& c) { c.schedules[1].sections.clear(); },
       invalid},
      {"too many sections",
       [](ConcertSpec& c) {
         c.schedules[1].sections.resize(257, Section("S", 1, 1, "R", 1));
       },
       limit},
      {"empty section name", [](ConcertSpec& c) { c.schedules[1].sections[1].name = ""; },
       invalid},
      {"empty grade", [](ConcertSpec& c) { c.schedules[1].sections[1].grade = ""; }, invalid},
      {"zero rows", [](ConcertSpec& c) { c.schedules[1].sections[1].rows = 0; }, invalid},
      {"negative rows", [](ConcertSpec& c) { c.schedules[1].sections[1].rows = -1; }, invalid},
      {"zero seats per row",
       [](ConcertSpec& c) { c.schedules[1].sections[1].seats_per_row = 0; }, invalid},
      {"zero price", [](ConcertSpec& c) { c.schedules[1].sections[1].price = 0; }, invalid},
      {"negative price", [](ConcertSpec& c) { c.schedules[1].sections[1].price = -100; },
       invalid},
      {"too many rows", [](ConcertSpec& c) { c.schedules[1].sections[1].rows = 1'001; },
       above_max},
      {"too many seats per row",
       [](ConcertSpec& c) { c.schedules[1].sections[1].seats_per_row = 1'001; }, above_max},
      {"price above max",
       [](ConcertSpec& c) { c.schedules[1].sections[1].price = 10'000'001; }, above_max},
      {"too many seats in a schedule",
       [](ConcertSpec& c) {
         c.schedules[1].sections = {Section("A", 1'000, 200, "R", 1),
                                    Section("B", 1, 1, "R", 1)};
       },
       limit},
      {"zero capacity", [](ConcertSpec& c) { c.sale.queue_capacity = 0; }, invalid},
      {"capacity above max", [](ConcertSpec& c) { c.sale.queue_capacity = 1'000'001; },
       above_max},
      {"zero admission rate", [](ConcertSpec& c) { c.sale.admission_per_minute = 0; }, invalid},
      {"negative admission rate (not kNoLimit)",
       [](ConcertSpec& c) { c.sale.admission_per_minute = -2; }, invalid},
      {"admission rate above 60,000,000",
       [](ConcertSpec& c) { c.sale.admission_per_minute = 60'000'001; }, above_max},
      {"zero session ttl", [](ConcertSpec& c) { c.sale.session_ttl_us = 0; }, invalid},
      {"zero hold ttl", [](ConcertSpec& c) { c.sale.hold_ttl_us = 0; }, invalid},
      {"negative hold ttl", [](ConcertSpec& c) { c.sale.hold_ttl_us = -Sec(1); }, invalid},
      {"zero abandon timeout", [](ConcertSpec& c) { c.sale.abandon_timeout_us = 0; }, invalid},
      {"zero poll interval", [](ConcertSpec& c) { c.sale.poll_interval_us = 0; }, invalid},
      {"poll interval above abandon timeout",
       [](ConcertSpec& c) {
         c.sale.abandon_timeout_us = Sec(10);
         c.sale.poll_interval_us = Sec(10) + 1;
       },
       invalid},
      {"zero seats per reservation",
       [](ConcertSpec& c) { c.sale.max_seats_per_reservation = 0; }, invalid},
      {"seats per reservation above max",
       [](ConcertSpec& c) { c.sale.max_seats_per_reservation = 17; }, above_max},
      {"zero seats per user", [](ConcertSpec& c) { c.sale.max_seats_per_user = 0; }, invalid},
      {"negative seats per user (not kNoLimit)",
       [](ConcertSpec& c) { c.sale.max_seats_per_user = -2; }, invalid},
      {"opens_at below kNever", [](ConcertSpec& c) { c.sale.opens_at = -2; }, invalid},
      {"negative opens_at", [](ConcertSpec& c) { c.sale.opens_at = -5; }, invalid},
      {"negative session ttl", [](ConcertSpec& c) { c.sale.session_ttl_us = -Sec(1); }, invalid},
      // Validation order: text before schedules, schedules before sale.
      {"long title and too many schedules",
       [&](ConcertSpec& c) {
         c.title = too_long;
         c.schedules.resize(300, c.schedules[0]);
       },
       invalid},
      {"too many schedules and bad sale",
       [](ConcertSpec& c) {
         c.schedules.resize(300, c.schedules[0]);
         c.sale.queue_capacity = 0;
       },
       limit},
  };

  Engine engine;
  for (const BadSpec& bad : cases) {
    INFO(bad.what);
    ConcertSpec spec = SmallConcert();
    bad.mutate(spec);
    absl::StatusOr<ConcertView> r = engine.CreateConcert(spec, kT0);
    INFO(r.status());
    CHECK(bad.codes.count(Code(r)) == 1);
  }
  // Nothing was created: the first valid concert still gets the first ids.
  CHECK(engine.EventsAfter(0, 1'000).empty());
  absl::StatusOr<ConcertView> ok = engine.CreateConcert(SmallConcert(), kT0);
  REQUIRE_OK(ok);
  CHECK(ok->id == 1);
  CHECK(ok->schedules[0].id == 1);
  absl::StatusOr<std::vector<SeatView>> seats = engine.ListSeats(1, std::nullopt, kT0);
  REQUIRE_OK(seats);
  CHECK(seats->front().id == 1);
  const absl::Status inv = engine.CheckInvariants();
  INFO(inv);
  CHECK(inv.ok());
}

TEST_CASE("CreateConcert accepts values exactly at the limits", "[engine][catalog]") {
  Engine engine;
  ConcertSpec spec = SmallConcert();
  spec.title = std::string(200, 't');
  spec.schedules[0].sections[0].price = 10'000'000;
  spec.sale.queue_capacity = 1'000'000;
  spec.sale.admission_per_minute = 60'000'000;
  spec.sale.max_seats_per_reservation = 16;
  spec.sale.abandon_timeout_us = Sec(5);
  spec.sale.poll_interval_us = Sec(5);
  spec.sale.opens_at = 0;
  spec.sale.max_seats_per_user = 1;
  REQUIRE_OK(engine.CreateConcert(spec, kT0));
  ConcertSpec unlimited = SmallConcert();
  unlimited.sale.admission_per_minute = kNoLimit;
  unlimited.sale.max_seats_per_user = kNoLimit;
  unlimited.sale.opens_at = kNever;
  REQUIRE_OK(engine.CreateConcert(unlimited, kT0));
}

TEST_CASE("concerts_max and seats_per_schedule_max come from the engine limits",
          "[engine][catalog]") {
  EngineConfig config;
  config.limits.concerts_max = 1;
  config.limits.seats_per_schedule_max = 15;
  Engine engine(config);
  REQUIRE_OK(engine.CreateConcert(SmallConcert(), kT0));  // exactly 15 seats per schedule
  CHECK(Code(engine.CreateConcert(SmallConcert(), kT0)) == "LIMIT_EXCEEDED");

  Engine engine2(config);
  ConcertSpec big = SmallConcert();
  big.schedules[1].sections[1].seats_per_row = 6;  // 16 seats
  CHECK(Code(engine2.CreateConcert(big, kT0)) == "LIMIT_EXCEEDED");
}

TEST_CASE("opens_at at or before creation opens the queue at once", "[engine][catalog]") {
  SaleSettings sale;
  sale.opens_at = kT0;  // == now: inclusive
  Drop d(sale);
  const UserId u = d.NewUser();
  const TokenView t = d.Join(u, kT0);
  CHECK(Name(t.status) == "ACTIVE");
  for (const Event& e : d.EventsSince(0)) {
    if (e.type == EventType::kQueueJoined) CHECK(e.value == 0);
  }
}

TEST_CASE("ids out of range are clean errors, never crashes", "[engine][robustness]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  for (const int64_t bad : {int64_t{0}, int64_t{-1}, int64_t{1'000'000}, INT64_MAX, INT64_MIN}) {
    INFO("id " << bad);
    CHECK(Code(d.engine.JoinQueue(bad, d.concert, kT0)) == "USER_NOT_FOUND");
    CHECK(Code(d.engine.JoinQueue(a, bad, kT0)) == "CONCERT_NOT_FOUND");
    CHECK(Code(d.engine.QueueStatus(a, bad, kT0)) == "QUEUE_TOKEN_INVALID");
    CHECK(Code(d.engine.LeaveQueue(a, bad, kT0)) == "QUEUE_TOKEN_INVALID");
    CHECK(Code(d.engine.CheckGate(a, bad, d.concert, kT0)) == "QUEUE_TOKEN_INVALID");
    CHECK(Code(d.engine.CheckGate(a, ta, bad, kT0)) == "QUEUE_TOKEN_INVALID");
    HoldRequest h;
    h.user_id = a;
    h.token_id = ta;
    h.schedule_id = bad;
    h.seat_ids = {1};
    CHECK(Code(d.engine.Hold(h, kT0)) == "SCHEDULE_NOT_FOUND");
    CHECK(Code(d.Hold(a, ta, {bad}, kT0)) == "SEAT_NOT_FOUND");
    CHECK(Code(d.engine.Cancel(a, bad, kT0)) == "RESERVATION_NOT_FOUND");
    CHECK(Code(d.engine.ReleaseSeat(a, bad, 1, kT0)) == "RESERVATION_NOT_FOUND");
    CHECK(Code(d.engine.Pay(a, ta, bad, "", kT0)) == "RESERVATION_NOT_FOUND");
    CHECK(Code(d.engine.Refund(a, bad, kT0)) == "RESERVATION_NOT_FOUND");
    CHECK(Code(d.engine.GetReservation(a, bad, kT0)) == "RESERVATION_NOT_FOUND");
    CHECK(Code(d.engine.ListSeats(bad, std::nullopt, kT0)) == "SCHEDULE_NOT_FOUND");
    CHECK(Code(d.engine.ListSchedules(bad, kT0)) == "CONCERT_NOT_FOUND");
    CHECK(Code(d.engine.GetConcert(bad, kT0)) == "CONCERT_NOT_FOUND");
    CHECK(Code(d.engine.Stats(bad, kT0)) == "CONCERT_NOT_FOUND");
    CHECK(Code(d.engine.Balance(bad, kT0)) == "USER_NOT_FOUND");
    CHECK(Code(d.engine.History(bad, kT0)) == "USER_NOT_FOUND");
    CHECK(Code(d.engine.ListReservations(bad, kT0)) == "USER_NOT_FOUND");
    CHECK(Code(d.engine.Charge(bad, 1, "", kT0)) == "USER_NOT_FOUND");
  }
  CHECK(Code(d.engine.Charge(a, INT64_MAX, "", kT0)) == "INVALID_AMOUNT");
  CHECK(Code(d.engine.Charge(a, INT64_MIN, "", kT0)) == "INVALID_AMOUNT");
  CHECK(Code(d.HoldBest(a, ta, INT64_MAX, "", kT0)) == "TOO_MANY_SEATS");
  // Nothing happened.
  CHECK(d.BalanceOf(a, kT0) == 0);
  CHECK(Name(d.SeatState(1, kT0)) == "AVAILABLE");
  d.CheckInvariants();
}

// ---------------------------------------------------------------------------
// Queue and gate

TEST_CASE("joining: ACTIVE below capacity, WAITING with position and ETA above",
          "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 2;
  Drop d(sale);
  const UserId a = d.NewUser();
  const UserId b = d.NewUser();
  const UserId c = d.NewUser();
  const UserId e = d.NewUser();

  const TokenView ta = d.Join(a, kT0 + 1);
  CHECK(ta.id == 1);
  CHECK(Name(ta.status) == "ACTIVE");
  CHECK(ta.user_id == a);
  CHECK(ta.concert_id == d.concert);
  CHECK(ta.position == -1);
  CHECK(ta.joined_at == kT0 + 1);
  CHECK(ta.activated_at == kT0 + 1);
  CHECK(ta.expires_at == kT0 + 1 + Sec(600));
  CHECK(ta.poll_after_us == Sec(5));

  const TokenView tb = d.Join(b, kT0 + 2);
  CHECK(Name(tb.status) == "ACTIVE");
  const TokenView tc = d.Join(c, kT0 + 3);
  CHECK(Name(tc.status) == "WAITING");
  CHECK(tc.position == 0);
  CHECK(tc.eta_us > 0);
  CHECK(tc.poll_after_us == Sec(5));
  const TokenView te = d.Join(e, kT0 + 4);
  CHECK(te.position == 1);
  CHECK(te.eta_us >= tc.eta_us);

  // Asking again returns the same live token, never a second place.
  const TokenView again = d.Join(c, kT0 + 5);
  CHECK(again.id == tc.id);
  CHECK(again.position == 0);
  CHECK(d.Join(a, kT0 + 6).id == ta.id);

  CHECK(Code(d.engine.JoinQueue(99, d.concert, kT0)) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.JoinQueue(a, 99, kT0)) == "CONCERT_NOT_FOUND");

  absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, kT0 + 7);
  REQUIRE_OK(stats);
  CHECK(stats->queue_active == 2);
  CHECK(stats->queue_waiting == 2);
  CHECK(stats->queue_joined_total == 4);
  CHECK(stats->queue_admitted_total == 2);
  d.CheckInvariants();
}

TEST_CASE("QUEUE_FULL past queue_length_max live tokens", "[engine][queue]") {
  EngineConfig config;
  config.limits.queue_length_max = 2;
  SaleSettings sale;
  sale.queue_capacity = 1;
  Drop d(sale, config);
  const UserId a = d.NewUser();
  const UserId b = d.NewUser();
  const UserId c = d.NewUser();
  d.Join(a, kT0);
  d.Join(b, kT0);
  CHECK(Code(d.engine.JoinQueue(c, d.concert, kT0)) == "QUEUE_FULL");
  CHECK(d.Join(b, kT0).position == 0);  // an existing token is still returned
}

TEST_CASE("the gate lets only the user's ACTIVE token for that concert through",
          "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const UserId b = d.NewUser();
  const TokenView tb = d.Join(b, kT0 + Sec(1));
  REQUIRE(Name(tb.status) == "WAITING");

  absl::StatusOr<TokenView> ok = d.engine.CheckGate(a, ta, d.concert, kT0 + Sec(2));
  REQUIRE_OK(ok);
  CHECK(ok->id == ta);
  CHECK(Name(ok->status) == "ACTIVE");

  absl::StatusOr<TokenView> waiting = d.engine.CheckGate(b, tb.id, d.concert, kT0 + Sec(2));
  CHECK(Code(waiting) == "QUEUE_NOT_ACTIVE");
  const ErrorDetails details = GetErrorDetails(waiting.status());
  CHECK(details.position == std::optional<int64_t>(0));
  REQUIRE(details.eta_us.has_value());
  CHECK(*details.eta_us > 0);
  CHECK(details.retry_after_us == std::optional<int64_t>(Sec(5)));

  CHECK(Code(d.engine.CheckGate(99, ta, d.concert, kT0)) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.CheckGate(b, ta, d.concert, kT0)) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(d.engine.CheckGate(a, 999, d.concert, kT0)) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(d.engine.CheckGate(a, 0, d.concert, kT0)) == "QUEUE_TOKEN_INVALID");

  // A token for another concert does not open this one.
  absl::StatusOr<ConcertView> other = d.engine.CreateConcert(SmallConcert(), kT0);
  REQUIRE_OK(other);
  CHECK(Code(d.engine.CheckGate(a, ta, other->id, kT0)) == "QUEUE_TOKEN_INVALID");

  // A WAITING token cannot hold; nothing changes.
  CHECK(Code(d.Hold(b, tb.id, {1}, kT0 + Sec(3))) == "QUEUE_NOT_ACTIVE");
  CHECK(Name(d.SeatState(1, kT0 + Sec(3))) == "AVAILABLE");

  // After leaving, the token is EXPIRED for good.
  REQUIRE_OK(d.engine.LeaveQueue(a, ta, kT0 + Sec(4)));
  CHECK(Code(d.engine.CheckGate(a, ta, d.concert, kT0 + Sec(5))) == "QUEUE_TOKEN_EXPIRED");
  CHECK(Code(d.Hold(a, ta, {1}, kT0 + Sec(5))) == "QUEUE_TOKEN_EXPIRED");
  // ... and b was admitted in its place.
  REQUIRE_OK(d.engine.CheckGate(b, tb.id, d.concert, kT0 + Sec(5)));
}

TEST_CASE("leaving admits the next in line; leaving twice changes nothing",
          "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const UserId b = d.NewUser();
  const UserId c = d.NewUser();
  const TokenId tb = d.Join(b, kT0 + Sec(1)).id;
  const TokenId tc = d.Join(c, kT0 + Sec(2)).id;

  CHECK(Code(d.engine.LeaveQueue(b, ta, kT0 + Sec(3))) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(d.engine.QueueStatus(b, ta, kT0 + Sec(3))) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(d.engine.QueueStatus(99, ta, kT0 + Sec(3))) == "USER_NOT_FOUND");

  absl::StatusOr<TokenView> left = d.engine.LeaveQueue(a, ta, kT0 + Sec(10));
  REQUIRE_OK(left);
  CHECK(Name(left->status) == "EXPIRED");
  CHECK(Name(left->end) == "LEFT");
  CHECK(left->ended_at == kT0 + Sec(10));

  const TokenView vb = d.Status(b, tb, kT0 + Sec(11));
  CHECK(Name(vb.status) == "ACTIVE");
  CHECK(vb.activated_at == kT0 + Sec(10));
  CHECK(vb.expires_at == kT0 + Sec(610));
  CHECK(d.Status(c, tc, kT0 + Sec(11)).position == 0);

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<TokenView> again = d.engine.LeaveQueue(a, ta, kT0 + Sec(20));
  REQUIRE_OK(again);
  CHECK(Name(again->end) == "LEFT");
  CHECK(again->ended_at == kT0 + Sec(10));
  CHECK(d.engine.last_event_seq() == before);

  // A new join after leaving is a new token at the back.
  const TokenView rejoin = d.Join(a, kT0 + Sec(21));
  CHECK(rejoin.id != ta);
  CHECK(rejoin.position == 1);
  d.CheckInvariants();
}

TEST_CASE("a session expires at exactly activated_at + session_ttl and the slot passes on "
          "at that time",
          "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  sale.session_ttl_us = Sec(60);
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const UserId b = d.NewUser();
  const TokenId tb = d.Join(b, kT0 + Sec(1)).id;
  d.Status(b, tb, kT0 + Sec(30));  // keep polling

  CHECK(Name(d.Status(a, ta, kT0 + Sec(60) - 1).status) == "ACTIVE");
  const TokenView va = d.Status(a, ta, kT0 + Sec(60));
  CHECK(Name(va.status) == "EXPIRED");
  CHECK(Name(va.end) == "SESSION_EXPIRED");
  CHECK(va.ended_at == kT0 + Sec(60));
  CHECK(Code(d.engine.CheckGate(a, ta, d.concert, kT0 + Sec(60))) == "QUEUE_TOKEN_EXPIRED");

  const TokenView vb = d.Status(b, tb, kT0 + Sec(75));
  CHECK(Name(vb.status) == "ACTIVE");
  CHECK(vb.activated_at == kT0 + Sec(60));
  CHECK(vb.expires_at == kT0 + Sec(120));
  d.CheckInvariants();
}

TEST_CASE("deadlines at the same time fire in kind order: session expiry before abandon",
          "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  sale.session_ttl_us = Sec(60);
  sale.abandon_timeout_us = Sec(60);
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser(kT0);
  const UserId b = d.NewUser();
  const TokenId tb = d.Join(b, kT0).id;
  // At kT0 + 60 s a's session ends and b's abandon deadline is due. The
  // session expiry fires first and admits b, which removes b's abandon deadline.
  d.engine.Advance(kT0 + Sec(60));
  const TokenView vb = d.Status(b, tb, kT0 + Sec(60));
  CHECK(Name(vb.status) == "ACTIVE");
  CHECK(vb.activated_at == kT0 + Sec(60));
  CHECK(Name(d.Status(a, ta, kT0 + Sec(60)).end) == "SESSION_EXPIRED");
}

TEST_CASE("a WAITING user who stops polling loses the place", "[engine][queue]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  sale.abandon_timeout_us = Sec(30);
  Drop d(sale);
  d.ActiveUser();
  const UserId b = d.NewUser();
  const UserId c = d.NewUser();
  const TokenId tb = d.Join(b, kT0 + Sec(1)).id;
  const TokenId tc = d.Join(c, kT0 + Sec(2)).id;
  // c keeps polling (a gate check counts as a poll too), b does not.
  d.Status(c, tc, kT0 + Sec(20));
  CHECK(Code(d.engine.CheckGate(c, tc, d.concert, kT0 + Sec(40))) == "QUEUE_NOT_ACTIVE");

  const TokenView vb = d.Status(b, tb, kT0 + Sec(31));
  CHECK(Name(vb.status) == "EXPIRED");
  CHECK(Name(vb.end) == "ABANDONED");
  CHECK(vb.ended_at == kT0 + Sec(31));
  const TokenView vc = d.Status(c, tc, kT0 + Sec(45));
  CHECK(Name(vc.status) == "WAITING");
  CHECK(vc.position == 0);
  absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, kT0 + Sec(45));
  REQUIRE_OK(stats);
  CHECK(stats->queue_abandoned_total == 1);
}

TEST_CASE("a pre-queue before opens_at is shuffled by seed at opening", "[engine][queue]") {
  auto run = [](uint64_t seed) {
    EngineConfig config;
    config.seed = seed;
    SaleSettings sale;
    sale.opens_at = kT0 + Sec(100);
    sale.queue_capacity = 1;
    sale.abandon_timeout_us = Sec(600);
    Drop d(sale, config);
    std::vector<std::pair<UserId, TokenId>> users;
    for (int i = 0; i < 20; ++i) {
      const UserId u = d.NewUser();
      const TokenView t = d.Join(u, kT0 + Sec(1) + i);
      CHECK(Name(t.status) == "WAITING");
      CHECK(t.position == -1);
      CHECK(t.eta_us == Sec(99) - i);
      users.emplace_back(u, t.id);
    }
    const UserId first = users[0].first;
    const TokenId first_token = users[0].second;
    CHECK(Code(d.engine.CheckGate(first, first_token, d.concert, kT0 + Sec(50))) ==
          "QUEUE_NOT_ACTIVE");
    // Order of positions after opening.
    std::vector<int64_t> positions;
    int64_t active = 0;
    for (const auto& [u, t] : users) {
      const TokenView v = d.Status(u, t, kT0 + Sec(100));
      if (Name(v.status) == "ACTIVE") {
        ++active;
        CHECK(v.activated_at == kT0 + Sec(100));
        positions.push_back(-1);
      } else {
        positions.push_back(v.position);
      }
    }
    CHECK(active == 1);
    bool opened = false;
    for (const Event& e : d.EventsSince(0)) {
      if (e.type == EventType::kQueueJoined) CHECK(e.value == 1);
      if (e.type == EventType::kQueueOpened) {
        opened = true;
        CHECK(e.value == 20);
        CHECK(e.at == kT0 + Sec(100));
      }
    }
    CHECK(opened);
    std::set<int64_t> distinct(positions.begin(), positions.end());
    CHECK(distinct.size() == 20);
    return std::make_pair(positions, d.engine.StateHash());
  };
  const auto a = run(1);
  const auto b = run(1);
  const auto c = run(2);
  CHECK(a.first == b.first);
  CHECK(a.second == b.second);
  CHECK(a.first != c.first);
  CHECK(a.second != c.second);
  std::vector<int64_t> arrival_order = {-1};
  for (int64_t p = 0; p < 19; ++p) arrival_order.push_back(p);
  CHECK(a.first != arrival_order);
}

// ---------------------------------------------------------------------------
// Holds

TEST_CASE("holding explicit seats makes a PENDING reservation", "[engine][hold]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {3, 12, 4}, kT0 + Sec(10));
  REQUIRE_OK(r);
  CHECK(r->id == 1);
  CHECK(r->user_id == a);
  CHECK(r->concert_id == d.concert);
  CHECK(r->schedule_id == d.schedule);
  CHECK(r->token_id == ta);
  CHECK(Name(r->status) == "PENDING");
  CHECK(Ids(r->seat_ids) == std::vector<SeatId>{3, 12, 4});
  CHECK(r->amount == 100'000 + 50'000 + 100'000);
  CHECK(r->created_at == kT0 + Sec(10));
  CHECK(r->expires_at == kT0 + Sec(310));
  CHECK(r->ended_at == kNever);
  CHECK(r->payment_id == 0);

  for (SeatId s : {3, 4, 12}) CHECK(Name(d.SeatState(s, kT0 + Sec(11))) == "HELD");
  CHECK(Name(d.SeatState(5, kT0 + Sec(11))) == "AVAILABLE");
  absl::StatusOr<std::vector<SeatView>> held =
      d.engine.ListSeats(d.schedule, SeatStatus::kHeld, kT0 + Sec(11));
  REQUIRE_OK(held);
  REQUIRE(held->size() == 3);
  absl::StatusOr<std::vector<SeatView>> available =
      d.engine.ListSeats(d.schedule, SeatStatus::kAvailable, kT0 + Sec(11));
  REQUIRE_OK(available);
  CHECK(available->size() == 12);
  absl::StatusOr<std::vector<ScheduleView>> schedules =
      d.engine.ListSchedules(d.concert, kT0 + Sec(11));
  REQUIRE_OK(schedules);
  CHECK((*schedules)[0].seats_available == 12);
  CHECK((*schedules)[0].seats_held == 3);
  CHECK((*schedules)[1].seats_available == 15);

  const std::vector<Event> events = d.EventsSince(before);
  REQUIRE(events.size() == 1);
  CHECK(Name(events[0].type) == "ReservationHeld");
  CHECK(events[0].reservation_id == 1);
  CHECK(events[0].user_id == a);
  CHECK(events[0].amount == 250'000);
  CHECK(events[0].value == 3);
  CHECK(events[0].at == kT0 + Sec(10));

  absl::StatusOr<std::vector<Reservation>> mine = d.engine.ListReservations(a, kT0 + Sec(11));
  REQUIRE_OK(mine);
  REQUIRE(mine->size() == 1);
  CHECK(mine->front().id == 1);
  d.CheckInvariants();
}

TEST_CASE("hold errors, in the order of the rules, change nothing", "[engine][hold]") {
  SaleSettings sale;
  sale.queue_capacity = 2;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  const UserId w = d.NewUser();
  const TokenId tw = d.Join(w, kT0).id;
  REQUIRE_OK(d.Hold(b, tb, {1}, kT0));  // seat 1 is taken
  const uint64_t hash = d.engine.StateHash();
  const TimeUs now = kT0;  // same time: no deadline can change the state

  auto hold = [&](UserId user, TokenId token, ScheduleId schedule, std::vector<SeatId> seats,
                  int64_t quantity, std::string grade, std::string key = "") {
    HoldRequest r;
    r.user_id = user;
    r.token_id = token;
    r.schedule_id = schedule;
    r.seat_ids = std::move(seats);
    r.quantity = quantity;
    r.grade = std::move(grade);
    r.idempotency_key = std::move(key);
    return d.engine.Hold(r, now);
  };
  const ScheduleId s = d.schedule;

  CHECK(Code(hold(99, ta, s, {2}, 0, "")) == "USER_NOT_FOUND");
  CHECK(Code(hold(a, ta, s, {2}, 0, "", std::string(129, 'k'))) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, 99, {2}, 0, "")) == "SCHEDULE_NOT_FOUND");
  // Unknown schedule comes before the gate; the gate before the arguments.
  CHECK(Code(hold(w, tw, 99, {2}, 0, "")) == "SCHEDULE_NOT_FOUND");
  CHECK(Code(hold(w, tw, s, {}, 0, "")) == "QUEUE_NOT_ACTIVE");
  CHECK(Code(hold(a, tb, s, {2}, 0, "")) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(hold(a, ta, s, {}, 0, "")) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, s, {}, -2, "")) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, s, {2}, 1, "")) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, s, {2}, 0, "VIP")) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, s, {2, 3, 4, 5, 6}, 0, "")) == "TOO_MANY_SEATS");
  CHECK(Code(hold(a, ta, s, {}, 5, "")) == "TOO_MANY_SEATS");
  CHECK(Code(hold(a, ta, s, {2, 2, 2, 2, 2}, 0, "")) == "TOO_MANY_SEATS");
  CHECK(Code(hold(a, ta, s, {2, 3, 2}, 0, "")) == "INVALID_ARGUMENT");
  CHECK(Code(hold(a, ta, s, {}, 2, "GA")) == "INVALID_ARGUMENT");
  // Seats in list order: a missing seat before a taken one, and the reverse.
  CHECK(Code(hold(a, ta, s, {2, 99, 1}, 0, "")) == "SEAT_NOT_FOUND");
  CHECK(Code(hold(a, ta, s, {2, 16}, 0, "")) == "SEAT_NOT_FOUND");  // other schedule
  CHECK(Code(hold(a, ta, s, {0}, 0, "")) == "SEAT_NOT_FOUND");
  absl::StatusOr<Reservation> taken = hold(a, ta, s, {2, 1, 99}, 0, "");
  CHECK(Code(taken) == "SEAT_UNAVAILABLE");
  CHECK(GetErrorDetails(taken.status()).seat_id == std::optional<int64_t>(1));
  CHECK(Code(hold(a, ta, s, {1}, 0, "")) == "SEAT_UNAVAILABLE");

  CHECK(d.engine.StateHash() == hash);
  CHECK(Name(d.SeatState(2, now)) == "AVAILABLE");
  // A token of this concert does not pass the gate of another concert's schedule.
  absl::StatusOr<ConcertView> other = d.engine.CreateConcert(SmallConcert(), now);
  REQUIRE_OK(other);
  CHECK(Code(hold(a, ta, other->schedules[0].id, {31}, 0, "")) == "QUEUE_TOKEN_INVALID");
  // The next reservation still gets the next dense id.
  absl::StatusOr<Reservation> ok = hold(a, ta, s, {2}, 0, "", std::string(128, 'k'));
  REQUIRE_OK(ok);
  CHECK(ok->id == 2);
  d.CheckInvariants();
}

TEST_CASE("best-available holds adjacent seats, avoiding orphans, by grade",
          "[engine][hold]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  // Rows: A row 1 = seats 1..5, A row 2 = 6..10, B row 1 = 11..15.
  absl::StatusOr<Reservation> r1 = d.HoldBest(a, ta, 2, "R", kT0);
  REQUIRE_OK(r1);
  CHECK(Ids(r1->seat_ids) == std::vector<SeatId>{11, 12});
  CHECK(r1->amount == 100'000);

  absl::StatusOr<Reservation> r2 = d.HoldBest(a, ta, 3, "", kT0);
  REQUIRE_OK(r2);
  CHECK(Ids(r2->seat_ids) == std::vector<SeatId>{1, 2, 3});

  // Row 1 has a run of 2 left: taking one would orphan the other.
  absl::StatusOr<Reservation> r3 = d.HoldBest(a, ta, 1, "", kT0);
  REQUIRE_OK(r3);
  CHECK(Ids(r3->seat_ids) == std::vector<SeatId>{6});

  // B has 13..15 left: no run of 4.
  absl::StatusOr<Reservation> none = d.HoldBest(a, ta, 4, "R", kT0);
  CHECK(Code(none) == "SEAT_UNAVAILABLE");
  absl::StatusOr<Reservation> vip = d.HoldBest(a, ta, 4, "VIP", kT0);
  REQUIRE_OK(vip);
  CHECK(Ids(vip->seat_ids) == std::vector<SeatId>{7, 8, 9, 10});
  d.CheckInvariants();
}

TEST_CASE("max_seats_per_user counts HELD and SOLD seats in the concert", "[engine][hold]") {
  SaleSettings sale;
  sale.max_seats_per_user = 3;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  absl::StatusOr<Reservation> r1 = d.Hold(a, ta, {1, 2}, kT0);
  REQUIRE_OK(r1);
  CHECK(Code(d.Hold(a, ta, {3, 4}, kT0)) == "SEAT_LIMIT_PER_USER");
  // The limit is checked before the seats themselves.
  CHECK(Code(d.Hold(a, ta, {99, 98}, kT0)) == "SEAT_LIMIT_PER_USER");
  // Across schedules of the same concert.
  HoldRequest other;
  other.user_id = a;
  other.token_id = ta;
  other.schedule_id = d.schedule2;
  other.seat_ids = {16, 17};
  CHECK(Code(d.engine.Hold(other, kT0)) == "SEAT_LIMIT_PER_USER");
  REQUIRE_OK(d.Hold(a, ta, {3}, kT0));
  CHECK(Code(d.Hold(a, ta, {4}, kT0)) == "SEAT_LIMIT_PER_USER");
  // Another user has their own count.
  REQUIRE_OK(d.Hold(b, tb, {4, 5, 6}, kT0));
  // Cancelling gives the seats back to the user's allowance.
  REQUIRE_OK(d.engine.Cancel(a, r1->id, kT0 + Sec(1)));
  REQUIRE_OK(d.Hold(a, ta, {7, 8}, kT0 + Sec(1)));
  CHECK(Code(d.Hold(a, ta, {9}, kT0 + Sec(1))) == "SEAT_LIMIT_PER_USER");
  // Expired holds no longer count either.
  REQUIRE_OK(d.Hold(a, ta, {9}, kT0 + Sec(1) + Sec(300)));
  d.CheckInvariants();
}

TEST_CASE("SOLD seats count toward max_seats_per_user until refunded", "[engine][hold]") {
  SaleSettings sale;
  sale.max_seats_per_user = 2;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  d.Charge(a, 1'000'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0);
  REQUIRE_OK(r);
  REQUIRE_OK(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(1)));
  const TokenId t2 = d.Join(a, kT0 + Sec(2)).id;
  CHECK(Code(d.Hold(a, t2, {3}, kT0 + Sec(2))) == "SEAT_LIMIT_PER_USER");
  REQUIRE_OK(d.engine.Refund(a, r->id, kT0 + Sec(3)));
  REQUIRE_OK(d.Hold(a, t2, {3, 4}, kT0 + Sec(4)));
  d.CheckInvariants();
}

// ---------------------------------------------------------------------------
// Expiry

TEST_CASE("a hold expires at exactly expires_at", "[engine][expiry]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  d.Charge(a, 1'000'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0 + Sec(10));
  REQUIRE_OK(r);
  const TimeUs expires_at = r->expires_at;
  REQUIRE(expires_at == kT0 + Sec(310));

  SECTION("one microsecond before: still held and payable") {
    CHECK(Name(d.Get(a, r->id, expires_at - 1).status) == "PENDING");
    CHECK(Name(d.SeatState(1, expires_at - 1)) == "HELD");
    CHECK(Code(d.Hold(b, tb, {1}, expires_at - 1)) == "SEAT_UNAVAILABLE");
    absl::StatusOr<Payment> p = d.engine.Pay(a, ta, r->id, "", expires_at - 1);
    REQUIRE_OK(p);
    CHECK(p->paid_at == expires_at - 1);
    CHECK(Name(d.Get(a, r->id, expires_at + Sec(100)).status) == "CONFIRMED");
    CHECK(Name(d.SeatState(1, expires_at + Sec(100))) == "SOLD");
  }
  SECTION("at expires_at a read sees it expired and the seats free") {
    const Reservation got = d.Get(a, r->id, expires_at);
    CHECK(Name(got.status) == "EXPIRED");
    CHECK(got.ended_at == expires_at);
    CHECK(Name(d.SeatState(1, expires_at)) == "AVAILABLE");
    CHECK(Name(d.SeatState(2, expires_at)) == "AVAILABLE");
  }
  SECTION("at expires_at payment is refused and the balance untouched") {
    CHECK(Code(d.engine.Pay(a, ta, r->id, "", expires_at)) == "HOLD_EXPIRED");
    CHECK(d.BalanceOf(a, expires_at) == 1'000'000);
    CHECK(Code(d.engine.Cancel(a, r->id, expires_at)) == "HOLD_EXPIRED");
    CHECK(Code(d.engine.ReleaseSeat(a, r->id, 1, expires_at)) == "HOLD_EXPIRED");
  }
  SECTION("at expires_at someone else can hold the seats") {
    absl::StatusOr<Reservation> other = d.Hold(b, tb, {1, 2}, expires_at);
    REQUIRE_OK(other);
    CHECK(Name(d.Get(a, r->id, expires_at).status) == "EXPIRED");
  }
  SECTION("long after, the expiry happened at expires_at with one event") {
    d.engine.Advance(expires_at + Sec(1'000));
    int64_t expired_events = 0;
    for (const Event& e : d.EventsSince(0)) {
      if (e.type == EventType::kReservationExpired) {
        ++expired_events;
        CHECK(e.reservation_id == r->id);
        CHECK(e.at == expires_at);
      }
    }
    CHECK(expired_events == 1);
    CHECK(d.Get(a, r->id, expires_at + Sec(1'000)).ended_at == expires_at);
    absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, expires_at + Sec(1'000));
    REQUIRE_OK(stats);
    CHECK(stats->reservations_expired == 1);
    CHECK(stats->reservations_pending == 0);
    CHECK(stats->seats_held == 0);
  }
  d.CheckInvariants();
}

// ---------------------------------------------------------------------------
// Cancel and release

TEST_CASE("cancel frees the seats; only a PENDING reservation of one's own can be canceled",
          "[engine][cancel]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0);
  REQUIRE_OK(r);

  CHECK(Code(d.engine.Cancel(99, r->id, kT0 + Sec(1))) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.Cancel(b, r->id, kT0 + Sec(1))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.Cancel(a, 99, kT0 + Sec(1))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.GetReservation(b, r->id, kT0 + Sec(1))) == "RESERVATION_NOT_FOUND");

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<Reservation> c = d.engine.Cancel(a, r->id, kT0 + Sec(5));
  REQUIRE_OK(c);
  CHECK(Name(c->status) == "CANCELED");
  CHECK(c->ended_at == kT0 + Sec(5));
  CHECK(Name(d.SeatState(1, kT0 + Sec(5))) == "AVAILABLE");
  CHECK(Name(d.SeatState(2, kT0 + Sec(5))) == "AVAILABLE");
  CHECK(d.EventNamesSince(before) == std::vector<std::string>{"ReservationCanceled"});
  CHECK(Code(d.engine.Cancel(a, r->id, kT0 + Sec(6))) == "RESERVATION_NOT_PENDING");
  // The seats can be held again.
  REQUIRE_OK(d.Hold(b, tb, {1, 2}, kT0 + Sec(7)));
  // The hold deadline was dropped: nothing expires later.
  d.engine.Advance(kT0 + Sec(1'000));
  const Reservation later = d.Get(a, r->id, kT0 + Sec(1'000));
  CHECK(Name(later.status) == "CANCELED");
  CHECK(later.ended_at == kT0 + Sec(5));
  for (const Event& e : d.EventsSince(0)) {
    if (e.reservation_id == r->id) CHECK(e.type != EventType::kReservationExpired);
  }
  d.CheckInvariants();
}

TEST_CASE("releasing one seat shrinks the reservation; the last one cancels it",
          "[engine][cancel]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 11, 2}, kT0);
  REQUIRE_OK(r);
  REQUIRE(r->amount == 250'000);

  CHECK(Code(d.engine.ReleaseSeat(99, r->id, 1, kT0)) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.ReleaseSeat(b, r->id, 1, kT0)) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.ReleaseSeat(a, r->id, 3, kT0)) == "SEAT_NOT_IN_RESERVATION");
  CHECK(Code(d.engine.ReleaseSeat(a, r->id, 999, kT0)) == "SEAT_NOT_IN_RESERVATION");

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<Reservation> r1 = d.engine.ReleaseSeat(a, r->id, 11, kT0 + Sec(1));
  REQUIRE_OK(r1);
  CHECK(Name(r1->status) == "PENDING");
  CHECK(Ids(r1->seat_ids) == std::vector<SeatId>{1, 2});
  CHECK(r1->amount == 200'000);
  CHECK(r1->expires_at == r->expires_at);
  CHECK(Name(d.SeatState(11, kT0 + Sec(1))) == "AVAILABLE");
  CHECK(Name(d.SeatState(1, kT0 + Sec(1))) == "HELD");
  const std::vector<Event> ev = d.EventsSince(before);
  REQUIRE(ev.size() == 1);
  CHECK(Name(ev[0].type) == "SeatReleased");
  CHECK(ev[0].value == 11);
  CHECK(ev[0].reservation_id == r->id);
  CHECK(Code(d.engine.ReleaseSeat(a, r->id, 11, kT0 + Sec(1))) == "SEAT_NOT_IN_RESERVATION");
  // Someone else can take the released seat at once.
  REQUIRE_OK(d.Hold(b, tb, {11}, kT0 + Sec(2)));

  REQUIRE_OK(d.engine.ReleaseSeat(a, r->id, 1, kT0 + Sec(3)));
  const Seq before_last = d.engine.last_event_seq();
  absl::StatusOr<Reservation> r3 = d.engine.ReleaseSeat(a, r->id, 2, kT0 + Sec(4));
  REQUIRE_OK(r3);
  CHECK(Name(r3->status) == "CANCELED");
  CHECK(r3->seat_ids.empty());
  CHECK(r3->amount == 0);
  CHECK(d.EventNamesSince(before_last) ==
        std::vector<std::string>{"SeatReleased", "ReservationCanceled"});
  CHECK(Code(d.engine.ReleaseSeat(a, r->id, 2, kT0 + Sec(5))) == "RESERVATION_NOT_PENDING");
  d.CheckInvariants();
}

// ---------------------------------------------------------------------------
// Money

TEST_CASE("charge rules and the balance history", "[engine][money]") {
  EngineConfig config;
  config.limits.charge_amount_max = 1'000'000;
  config.limits.balance_max = 1'500'000;
  Drop d(SaleSettings{}, config);
  const UserId a = d.NewUser();

  CHECK(Code(d.engine.Charge(99, 1'000, "", kT0)) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.Charge(a, 0, "", kT0)) == "INVALID_AMOUNT");
  CHECK(Code(d.engine.Charge(a, -5, "", kT0)) == "INVALID_AMOUNT");
  CHECK(Code(d.engine.Charge(a, 1'000'001, "", kT0)) == "INVALID_AMOUNT");
  CHECK(Code(d.engine.Charge(a, 10, std::string(129, 'k'), kT0)) == "INVALID_ARGUMENT");
  CHECK(d.BalanceOf(a, kT0) == 0);

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<ChargeResult> c1 = d.engine.Charge(a, 1'000'000, "", kT0 + Sec(1));
  REQUIRE_OK(c1);
  CHECK(c1->entry_id == 1);
  CHECK(c1->user_id == a);
  CHECK(c1->amount == 1'000'000);
  CHECK(c1->balance == 1'000'000);
  CHECK(c1->at == kT0 + Sec(1));
  const std::vector<Event> ev = d.EventsSince(before);
  REQUIRE(ev.size() == 1);
  CHECK(Name(ev[0].type) == "BalanceCharged");
  CHECK(ev[0].amount == 1'000'000);
  CHECK(ev[0].value == 1'000'000);

  CHECK(Code(d.engine.Charge(a, 500'001, "", kT0 + Sec(2))) == "BALANCE_LIMIT_EXCEEDED");
  absl::StatusOr<ChargeResult> c2 = d.engine.Charge(a, 500'000, "", kT0 + Sec(2));
  REQUIRE_OK(c2);
  CHECK(c2->balance == 1'500'000);
  CHECK(d.BalanceOf(a, kT0 + Sec(3)) == 1'500'000);
  CHECK(Code(d.engine.Balance(99, kT0)) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.History(99, kT0)) == "USER_NOT_FOUND");

  absl::StatusOr<std::vector<HistoryEntry>> h = d.engine.History(a, kT0 + Sec(3));
  REQUIRE_OK(h);
  REQUIRE(h->size() == 2);
  CHECK((*h)[0].kind == EntryKind::kCharge);
  CHECK((*h)[0].amount == 1'000'000);
  CHECK((*h)[0].balance_after == 1'000'000);
  CHECK((*h)[1].balance_after == 1'500'000);
  CHECK((*h)[1].at == kT0 + Sec(2));
  d.CheckInvariants();
}

TEST_CASE("paying confirms the reservation, sells the seats and frees the queue slot",
          "[engine][money]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const auto b = d.NewUser();
  const TokenId tb = d.Join(b, kT0 + Sec(1)).id;
  d.Charge(a, 300'000, kT0 + Sec(2));
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0 + Sec(3));
  REQUIRE_OK(r);

  CHECK(Code(d.engine.Pay(99, ta, r->id, "", kT0 + Sec(4))) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.Pay(b, tb, r->id, "", kT0 + Sec(4))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.Pay(a, ta, 99, "", kT0 + Sec(4))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.Pay(a, tb, r->id, "", kT0 + Sec(4))) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(d.engine.Pay(a, ta, r->id, std::string(129, 'k'), kT0 + Sec(4))) ==
        "INVALID_ARGUMENT");

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<Payment> p = d.engine.Pay(a, ta, r->id, "", kT0 + Sec(20));
  REQUIRE_OK(p);
  CHECK(p->id == 1);
  CHECK(p->reservation_id == r->id);
  CHECK(p->user_id == a);
  CHECK(p->amount == 200'000);
  CHECK(Name(p->status) == "SUCCEEDED");
  CHECK(p->paid_at == kT0 + Sec(20));
  CHECK(p->balance_after == 100'000);

  const Reservation got = d.Get(a, r->id, kT0 + Sec(21));
  CHECK(Name(got.status) == "CONFIRMED");
  CHECK(got.ended_at == kT0 + Sec(20));
  CHECK(got.payment_id == p->id);
  CHECK(Name(d.SeatState(1, kT0 + Sec(21))) == "SOLD");
  CHECK(Name(d.SeatState(2, kT0 + Sec(21))) == "SOLD");
  CHECK(d.BalanceOf(a, kT0 + Sec(21)) == 100'000);

  absl::StatusOr<std::vector<HistoryEntry>> h = d.engine.History(a, kT0 + Sec(21));
  REQUIRE_OK(h);
  REQUIRE(h->size() == 2);
  CHECK((*h)[1].kind == EntryKind::kPayment);
  CHECK((*h)[1].amount == 200'000);
  CHECK((*h)[1].balance_after == 100'000);
  CHECK((*h)[1].reservation_id == r->id);

  // The paying token completed and the next in line got the slot at that time.
  const TokenView va = d.Status(a, ta, kT0 + Sec(21));
  CHECK(Name(va.status) == "EXPIRED");
  CHECK(Name(va.end) == "COMPLETED");
  const TokenView vb = d.Status(b, tb, kT0 + Sec(21));
  CHECK(Name(vb.status) == "ACTIVE");
  CHECK(vb.activated_at == kT0 + Sec(20));

  const std::vector<Event> ev = d.EventsSince(before);
  REQUIRE(ev.size() >= 3);
  CHECK(Name(ev[0].type) == "PaymentSucceeded");
  CHECK(ev[0].amount == 200'000);
  CHECK(ev[0].value == p->id);
  CHECK(Name(ev[1].type) == "QueueCompleted");
  CHECK(ev[1].token_id == ta);
  CHECK(Name(ev[2].type) == "QueueAdmitted");
  CHECK(ev[2].token_id == tb);

  // Paying again: the token has completed, so the gate refuses first.
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(22))) == "QUEUE_TOKEN_EXPIRED");
  // A new token does not make a CONFIRMED reservation payable twice.
  const TokenView again = d.Join(a, kT0 + Sec(23));
  REQUIRE_OK(d.engine.LeaveQueue(b, tb, kT0 + Sec(23)));
  REQUIRE(Name(d.Status(a, again.id, kT0 + Sec(23)).status) == "ACTIVE");
  CHECK(Code(d.engine.Pay(a, again.id, r->id, "", kT0 + Sec(24))) == "RESERVATION_NOT_PENDING");

  absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, kT0 + Sec(24));
  REQUIRE_OK(stats);
  CHECK(stats->seats_sold == 2);
  CHECK(stats->reservations_confirmed == 1);
  CHECK(stats->payments == 1);
  CHECK(stats->revenue == 200'000);
  d.CheckInvariants();
}

TEST_CASE("any ACTIVE token of the user for the concert can pay; that token completes",
          "[engine][money]") {
  Drop d;
  const auto [a, t1] = d.ActiveUser();
  d.Charge(a, 500'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, t1, {1}, kT0);
  REQUIRE_OK(r);
  REQUIRE_OK(d.engine.LeaveQueue(a, t1, kT0 + Sec(1)));
  CHECK(Code(d.engine.Pay(a, t1, r->id, "", kT0 + Sec(2))) == "QUEUE_TOKEN_EXPIRED");
  const TokenView t2 = d.Join(a, kT0 + Sec(3));
  REQUIRE(Name(t2.status) == "ACTIVE");
  REQUIRE_OK(d.engine.Pay(a, t2.id, r->id, "", kT0 + Sec(4)));
  CHECK(Name(d.Status(a, t2.id, kT0 + Sec(5)).end) == "COMPLETED");
  CHECK(Name(d.Status(a, t1, kT0 + Sec(5)).end) == "LEFT");
  CHECK(Name(d.Get(a, r->id, kT0 + Sec(5)).status) == "CONFIRMED");
}

TEST_CASE("too little balance: PaymentFailed, and the reservation stays payable",
          "[engine][money]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  d.Charge(a, 50'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1}, kT0);
  REQUIRE_OK(r);
  const Seq before = d.engine.last_event_seq();
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(1))) == "INSUFFICIENT_BALANCE");
  const std::vector<Event> ev = d.EventsSince(before);
  REQUIRE(ev.size() == 1);
  CHECK(Name(ev[0].type) == "PaymentFailed");
  CHECK(ev[0].reservation_id == r->id);
  CHECK(ev[0].amount == 100'000);
  CHECK(ev[0].value == 50'000);

  CHECK(Name(d.Get(a, r->id, kT0 + Sec(2)).status) == "PENDING");
  CHECK(Name(d.SeatState(1, kT0 + Sec(2))) == "HELD");
  CHECK(d.BalanceOf(a, kT0 + Sec(2)) == 50'000);
  absl::StatusOr<std::vector<HistoryEntry>> h = d.engine.History(a, kT0 + Sec(2));
  REQUIRE_OK(h);
  CHECK(h->size() == 1);
  // The token is still ACTIVE: the user charges and retries.
  CHECK(Name(d.Status(a, ta, kT0 + Sec(2)).status) == "ACTIVE");
  // One won short is still too little; the exact amount is enough.
  d.Charge(a, 49'999, kT0 + Sec(3));
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(3))) == "INSUFFICIENT_BALANCE");
  d.Charge(a, 1, kT0 + Sec(3));
  absl::StatusOr<Payment> p = d.engine.Pay(a, ta, r->id, "", kT0 + Sec(4));
  REQUIRE_OK(p);
  CHECK(p->balance_after == 0);
  CHECK(d.BalanceOf(a, kT0 + Sec(5)) == 0);
  d.CheckInvariants();
}

TEST_CASE("release_on_payment_failure cancels the reservation at once", "[engine][money]") {
  SaleSettings sale;
  sale.release_on_payment_failure = true;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  d.Charge(a, 150'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0);
  REQUIRE_OK(r);
  const Seq before = d.engine.last_event_seq();
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(1))) == "INSUFFICIENT_BALANCE");
  CHECK(d.EventNamesSince(before) ==
        std::vector<std::string>{"PaymentFailed", "ReservationCanceled"});
  const Reservation got = d.Get(a, r->id, kT0 + Sec(1));
  CHECK(Name(got.status) == "CANCELED");
  CHECK(got.ended_at == kT0 + Sec(1));
  CHECK(Name(d.SeatState(1, kT0 + Sec(1))) == "AVAILABLE");
  CHECK(d.BalanceOf(a, kT0 + Sec(1)) == 150'000);
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(2))) == "RESERVATION_NOT_PENDING");
  // The seats are free for others right away.
  REQUIRE_OK(d.Hold(b, tb, {1, 2}, kT0 + Sec(2)));
  // The payer keeps the queue slot (the payment did not go through).
  CHECK(Name(d.Status(a, ta, kT0 + Sec(2)).status) == "ACTIVE");
  d.CheckInvariants();
}

TEST_CASE("refund returns the money and the seats", "[engine][money]") {
  EngineConfig config;
  config.limits.balance_max = 300'000;
  Drop d(SaleSettings{}, config);
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  d.Charge(a, 300'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1, 2}, kT0);
  REQUIRE_OK(r);
  absl::StatusOr<Reservation> pending = d.Hold(a, ta, {3}, kT0);
  REQUIRE_OK(pending);
  CHECK(Code(d.engine.Refund(a, r->id, kT0)) == "RESERVATION_NOT_CONFIRMED");
  absl::StatusOr<Payment> p = d.engine.Pay(a, ta, r->id, "", kT0 + Sec(1));
  REQUIRE_OK(p);
  // Top the wallet up to the maximum: a refund may exceed it.
  d.Charge(a, 200'000, kT0 + Sec(2));
  REQUIRE(d.BalanceOf(a, kT0 + Sec(2)) == 300'000);

  CHECK(Code(d.engine.Refund(99, r->id, kT0 + Sec(3))) == "USER_NOT_FOUND");
  CHECK(Code(d.engine.Refund(b, r->id, kT0 + Sec(3))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.Refund(a, 99, kT0 + Sec(3))) == "RESERVATION_NOT_FOUND");
  CHECK(Code(d.engine.Refund(a, pending->id, kT0 + Sec(3))) == "RESERVATION_NOT_CONFIRMED");

  const Seq before = d.engine.last_event_seq();
  absl::StatusOr<Reservation> refunded = d.engine.Refund(a, r->id, kT0 + Sec(3));
  REQUIRE_OK(refunded);
  CHECK(Name(refunded->status) == "REFUNDED");
  CHECK(d.BalanceOf(a, kT0 + Sec(3)) == 500'000);
  CHECK(Name(d.SeatState(1, kT0 + Sec(3))) == "AVAILABLE");
  CHECK(Name(d.SeatState(2, kT0 + Sec(3))) == "AVAILABLE");
  const std::vector<Event> ev = d.EventsSince(before);
  REQUIRE(ev.size() == 1);
  CHECK(Name(ev[0].type) == "ReservationRefunded");
  CHECK(ev[0].amount == 200'000);

  absl::StatusOr<std::vector<HistoryEntry>> h = d.engine.History(a, kT0 + Sec(3));
  REQUIRE_OK(h);
  REQUIRE(h->size() == 4);
  CHECK((*h)[3].kind == EntryKind::kRefund);
  CHECK((*h)[3].amount == 200'000);
  CHECK((*h)[3].balance_after == 500'000);
  CHECK((*h)[3].reservation_id == r->id);

  absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, kT0 + Sec(3));
  REQUIRE_OK(stats);
  CHECK(stats->revenue == 0);
  CHECK(stats->reservations_refunded == 1);
  CHECK(stats->seats_sold == 0);
  CHECK(Code(d.engine.Refund(a, r->id, kT0 + Sec(4))) == "RESERVATION_NOT_CONFIRMED");
  // Refunded seats can be sold again.
  REQUIRE_OK(d.Hold(b, tb, {1, 2}, kT0 + Sec(5)));
  d.CheckInvariants();
}

// ---------------------------------------------------------------------------
// Idempotency

TEST_CASE("a repeated charge key returns the first result once", "[engine][idempotency]") {
  Drop d;
  const UserId a = d.NewUser();
  const UserId b = d.NewUser();
  absl::StatusOr<ChargeResult> first = d.engine.Charge(a, 10'000, "k1", kT0);
  REQUIRE_OK(first);
  const Seq seq = d.engine.last_event_seq();
  absl::StatusOr<ChargeResult> again = d.engine.Charge(a, 10'000, "k1", kT0 + Sec(1));
  REQUIRE_OK(again);
  CHECK(again->entry_id == first->entry_id);
  CHECK(again->balance == first->balance);
  CHECK(again->at == first->at);
  CHECK(d.BalanceOf(a, kT0 + Sec(1)) == 10'000);
  CHECK(d.engine.last_event_seq() == seq);
  CHECK(Code(d.engine.Charge(a, 20'000, "k1", kT0 + Sec(2))) == "IDEMPOTENCY_KEY_REUSED");

  // Keys are scoped by user; an empty key means no idempotency.
  REQUIRE_OK(d.engine.Charge(b, 20'000, "k1", kT0 + Sec(3)));
  CHECK(d.BalanceOf(b, kT0 + Sec(3)) == 20'000);
  REQUIRE_OK(d.engine.Charge(a, 1, "", kT0 + Sec(3)));
  REQUIRE_OK(d.engine.Charge(a, 1, "", kT0 + Sec(3)));
  CHECK(d.BalanceOf(a, kT0 + Sec(3)) == 10'002);

  // A failed command does not consume its key.
  CHECK(Code(d.engine.Charge(a, 0, "k2", kT0 + Sec(4))) == "INVALID_AMOUNT");
  absl::StatusOr<ChargeResult> k2 = d.engine.Charge(a, 5, "k2", kT0 + Sec(5));
  REQUIRE_OK(k2);
  CHECK(k2->balance == 10'007);
  d.CheckInvariants();
}

TEST_CASE("idempotency records expire idempotency_ttl after the first success",
          "[engine][idempotency]") {
  EngineConfig config;
  config.limits.idempotency_ttl_us = Sec(10);
  Drop d(SaleSettings{}, config);
  const UserId a = d.NewUser();
  REQUIRE_OK(d.engine.Charge(a, 100, "k", kT0));
  CHECK(Code(d.engine.Charge(a, 200, "k", kT0 + Sec(10) - 1)) == "IDEMPOTENCY_KEY_REUSED");
  absl::StatusOr<ChargeResult> fresh = d.engine.Charge(a, 200, "k", kT0 + Sec(10));
  REQUIRE_OK(fresh);
  CHECK(fresh->balance == 300);
}

TEST_CASE("a repeated hold key returns the reservation as it was, even after payment",
          "[engine][idempotency]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  d.Charge(a, 1'000'000, kT0);
  absl::StatusOr<Reservation> first = d.Hold(a, ta, {1, 2}, kT0 + Sec(1), "hold-1");
  REQUIRE_OK(first);
  const uint64_t hash = d.engine.StateHash();
  absl::StatusOr<Reservation> again = d.Hold(a, ta, {1, 2}, kT0 + Sec(1), "hold-1");
  REQUIRE_OK(again);
  CHECK(again->id == first->id);
  CHECK(Ids(again->seat_ids) == std::vector<SeatId>{1, 2});
  CHECK(d.engine.StateHash() == hash);

  CHECK(Code(d.Hold(a, ta, {3}, kT0 + Sec(1), "hold-1")) == "IDEMPOTENCY_KEY_REUSED");
  // The same key for another operation is a different key.
  REQUIRE_OK(d.engine.Charge(a, 1, "hold-1", kT0 + Sec(1)));

  absl::StatusOr<Payment> p = d.engine.Pay(a, ta, first->id, "pay-1", kT0 + Sec(2));
  REQUIRE_OK(p);
  // Retry after the payment (the token has completed): the stored result
  // comes back, before any gate check, and nothing changes.
  const uint64_t paid_hash = d.engine.StateHash();
  absl::StatusOr<Reservation> late = d.Hold(a, ta, {1, 2}, kT0 + Sec(2), "hold-1");
  REQUIRE_OK(late);
  CHECK(late->id == first->id);
  CHECK(Name(late->status) == "PENDING");
  absl::StatusOr<Payment> p2 = d.engine.Pay(a, ta, first->id, "pay-1", kT0 + Sec(2));
  REQUIRE_OK(p2);
  CHECK(p2->id == p->id);
  CHECK(p2->amount == p->amount);
  CHECK(p2->balance_after == p->balance_after);
  CHECK(d.engine.StateHash() == paid_hash);
  CHECK(d.BalanceOf(a, kT0 + Sec(2)) == 1'000'000 + 1 - 200'000);
  absl::StatusOr<ConcertStats> stats = d.engine.Stats(d.concert, kT0 + Sec(2));
  REQUIRE_OK(stats);
  CHECK(stats->payments == 1);
  absl::StatusOr<std::vector<Reservation>> mine = d.engine.ListReservations(a, kT0 + Sec(2));
  REQUIRE_OK(mine);
  CHECK(mine->size() == 1);
  // Same pay key for another reservation is a reuse.
  CHECK(Code(d.engine.Pay(a, ta, first->id + 1, "pay-1", kT0 + Sec(3))) ==
        "IDEMPOTENCY_KEY_REUSED");
  d.CheckInvariants();
}

TEST_CASE("a repeated best-available hold key does not take more seats",
          "[engine][idempotency]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  HoldRequest h;
  h.user_id = a;
  h.token_id = ta;
  h.schedule_id = d.schedule;
  h.quantity = 2;
  h.grade = "R";
  h.idempotency_key = "best";
  absl::StatusOr<Reservation> first = d.engine.Hold(h, kT0 + Sec(1));
  REQUIRE_OK(first);
  absl::StatusOr<Reservation> again = d.engine.Hold(h, kT0 + Sec(2));
  REQUIRE_OK(again);
  CHECK(again->id == first->id);
  CHECK(Ids(again->seat_ids) == Ids(first->seat_ids));
  absl::StatusOr<std::vector<SeatView>> held =
      d.engine.ListSeats(d.schedule, SeatStatus::kHeld, kT0 + Sec(2));
  REQUIRE_OK(held);
  CHECK(held->size() == 2);
  // The grade is part of the request: another grade with the same key is a reuse.
  h.grade = "VIP";
  CHECK(Code(d.engine.Hold(h, kT0 + Sec(3))) == "IDEMPOTENCY_KEY_REUSED");
  h.grade = "R";
  h.quantity = 3;
  CHECK(Code(d.engine.Hold(h, kT0 + Sec(3))) == "IDEMPOTENCY_KEY_REUSED");
}

TEST_CASE("a repeated pay key returns the payment as it was, even after a refund",
          "[engine][idempotency]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  d.Charge(a, 500'000, kT0);
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1}, kT0);
  REQUIRE_OK(r);
  absl::StatusOr<Payment> p = d.engine.Pay(a, ta, r->id, "pay", kT0 + Sec(1));
  REQUIRE_OK(p);
  REQUIRE_OK(d.engine.Refund(a, r->id, kT0 + Sec(2)));
  const uint64_t hash = d.engine.StateHash();
  absl::StatusOr<Payment> again = d.engine.Pay(a, ta, r->id, "pay", kT0 + Sec(2));
  REQUIRE_OK(again);
  CHECK(again->id == p->id);
  CHECK(Name(again->status) == "SUCCEEDED");
  CHECK(again->balance_after == 400'000);
  CHECK(d.engine.StateHash() == hash);
  CHECK(d.BalanceOf(a, kT0 + Sec(2)) == 500'000);
}

TEST_CASE("a failed hold does not consume its key", "[engine][idempotency]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser();
  const auto [b, tb] = d.ActiveUser();
  REQUIRE_OK(d.Hold(b, tb, {1}, kT0));
  CHECK(Code(d.Hold(a, ta, {1}, kT0, "k")) == "SEAT_UNAVAILABLE");
  absl::StatusOr<Reservation> ok = d.Hold(a, ta, {2}, kT0, "k");
  REQUIRE_OK(ok);
  CHECK(Ids(ok->seat_ids) == std::vector<SeatId>{2});
}

// ---------------------------------------------------------------------------
// Events

TEST_CASE("events are numbered densely and read after a sequence", "[engine][events]") {
  SaleSettings sale;
  sale.queue_capacity = 1;
  Drop d(sale);
  const auto [a, ta] = d.ActiveUser(kT0);
  d.Charge(a, 500'000, kT0 + Sec(1));
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1}, kT0 + Sec(2));
  REQUIRE_OK(r);
  REQUIRE_OK(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(3)));

  const std::vector<std::string> expected = {
      "ConcertCreated", "UserCreated",      "QueueJoined",    "QueueAdmitted",
      "BalanceCharged", "ReservationHeld", "PaymentSucceeded", "QueueCompleted"};
  CHECK(d.EventNamesSince(0) == expected);
  const std::vector<Event> all = d.EventsSince(0);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq == static_cast<Seq>(i + 1));
  CHECK(d.engine.last_event_seq() == 8);
  for (size_t i = 1; i < all.size(); ++i) CHECK(all[i].at >= all[i - 1].at);
  CHECK(all[2].token_id == ta);
  CHECK(all[2].user_id == a);
  CHECK(all[2].concert_id == d.concert);
  CHECK(all[2].value == 0);  // not a pre-queue join

  const std::vector<Event> tail = d.engine.EventsAfter(5, 2);
  REQUIRE(tail.size() == 2);
  CHECK(tail[0].seq == 6);
  CHECK(tail[1].seq == 7);
  CHECK(d.engine.EventsAfter(8, 10).empty());
  CHECK(d.engine.EventsAfter(100, 10).empty());
}

TEST_CASE("a page of events is at most list_limit_max long", "[engine][events]") {
  EngineConfig config;
  config.limits.list_limit_max = 3;
  Engine engine(config);
  for (int i = 0; i < 10; ++i) REQUIRE_OK(engine.CreateUser(kT0));
  const std::vector<Event> page = engine.EventsAfter(0, 100);
  REQUIRE(page.size() == 3);
  CHECK(page[0].seq == 1);
  CHECK(engine.EventsAfter(7, 100).size() == 3);
  CHECK(engine.EventsAfter(8, 100).size() == 2);
  CHECK(engine.last_event_seq() == 10);
}

// ---------------------------------------------------------------------------
// Determinism, invariants, batch, clock

// A scripted drop used to compare engines; `variant` changes one command.
void Script(Engine& e, int variant) {
  ConcertSpec spec = SmallConcert();
  spec.sale.queue_capacity = 2;
  spec.sale.hold_ttl_us = Sec(60);
  REQUIRE_OK(e.CreateConcert(spec, kT0));
  std::vector<UserId> users;
  std::vector<TokenId> tokens;
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<UserId> u = e.CreateUser(kT0 + i);
    REQUIRE_OK(u);
    users.push_back(*u);
    absl::StatusOr<TokenView> t = e.JoinQueue(*u, 1, kT0 + Sec(1) + i);
    REQUIRE_OK(t);
    tokens.push_back(t->id);
    REQUIRE_OK(e.Charge(*u, 500'000, "", kT0 + Sec(2)));
  }
  HoldRequest h;
  h.user_id = users[0];
  h.token_id = tokens[0];
  h.schedule_id = 1;
  h.seat_ids = {1, 2};
  absl::StatusOr<Reservation> r0 = e.Hold(h, kT0 + Sec(3));
  REQUIRE_OK(r0);
  h.user_id = users[1];
  h.token_id = tokens[1];
  h.seat_ids = {variant == 1 ? SeatId{4} : SeatId{3}};
  REQUIRE_OK(e.Hold(h, kT0 + Sec(4)));
  REQUIRE_OK(e.Pay(users[0], tokens[0], r0->id, "", kT0 + Sec(5)));
  // users[1]'s hold expires at kT0 + 64 s; users[2] was admitted at kT0 + 5 s.
  e.Advance(kT0 + Sec(100));
  (void)e.QueueStatus(users[3], tokens[3], kT0 + Sec(101));
}

TEST_CASE("two engines fed the same commands have the same state hash", "[engine][hash]") {
  Engine a;
  Engine b;
  Engine c;
  Script(a, 0);
  Script(b, 0);
  Script(c, 1);
  CHECK(a.StateHash() == b.StateHash());
  CHECK(a.StateHash() != c.StateHash());
  // Reading does not change the state hash; a command does.
  const uint64_t h = a.StateHash();
  (void)a.Balance(1, kT0 + Sec(101));
  (void)a.ListSeats(1, std::nullopt, kT0 + Sec(101));
  (void)a.EventsAfter(0, 100);
  CHECK(a.StateHash() == h);
  REQUIRE_OK(a.Charge(1, 1, "", kT0 + Sec(101)));
  CHECK(a.StateHash() != h);
  REQUIRE_OK(b.Charge(1, 1, "", kT0 + Sec(101)));
  CHECK(a.StateHash() == b.StateHash());
  CHECK(a.CheckInvariants().ok());
  CHECK(c.CheckInvariants().ok());
}

TEST_CASE("a random drop keeps every invariant and never oversells", "[engine][invariants]") {
  const uint64_t seed = GENERATE(11u, 22u, 33u);
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };

  EngineConfig config;
  config.seed = seed;
  Engine e(config);
  ConcertSpec spec = SmallConcert();
  spec.sale.queue_capacity = 4;
  spec.sale.hold_ttl_us = Sec(20);
  spec.sale.session_ttl_us = Sec(90);
  spec.sale.abandon_timeout_us = Sec(30);
  spec.sale.max_seats_per_user = 3;
  spec.sale.release_on_payment_failure = seed % 2 == 0;
  REQUIRE_OK(e.CreateConcert(spec, kT0));

  std::vector<UserId> users;
  std::vector<TokenId> tokens;
  std::vector<std::pair<UserId, ReservationId>> reservations;
  std::map<std::string, int64_t> pay_codes;
  TimeUs now = kT0;
  for (int step = 0; step < 4'000; ++step) {
    now += static_cast<TimeUs>(rng() % 1'500'000);
    const size_t op = pick(12);
    if ((op == 0 && users.size() < 40) || users.empty()) {
      absl::StatusOr<UserId> u = e.CreateUser(now);
      REQUIRE_OK(u);
      users.push_back(*u);
      tokens.push_back(0);
    } else {
      const size_t i = pick(users.size());
      const UserId u = users[i];
      switch (op) {
        case 1:
        case 2: {
          absl::StatusOr<TokenView> t = e.JoinQueue(u, 1, now);
          REQUIRE_OK(t);
          tokens[i] = t->id;
          break;
        }
        case 3:
          if (tokens[i] != 0) (void)e.QueueStatus(u, tokens[i], now);
          break;
        case 4:
          if (tokens[i] != 0) (void)e.LeaveQueue(u, tokens[i], now);
          break;
        case 5:
        case 6: {
          HoldRequest h;
          h.user_id = u;
          h.token_id = tokens[i];
          h.schedule_id = 1 + static_cast<ScheduleId>(pick(2));
          if (rng() % 2 == 0) {
            const SeatId base = h.schedule_id == 1 ? 1 : 16;
            const size_t n = 1 + pick(3);
            for (size_t k = 0; k < n; ++k) {
              h.seat_ids.push_back(base + static_cast<SeatId>(pick(15)));
            }
          } else {
            h.quantity = 1 + static_cast<int64_t>(pick(3));
            if (rng() % 2 == 0) h.grade = rng() % 2 == 0 ? "VIP" : "R";
          }
          absl::StatusOr<Reservation> r = e.Hold(h, now);
          if (r.ok()) reservations.emplace_back(u, r->id);
          break;
        }
        case 7:
          (void)e.Charge(u, static_cast<Won>(100'000 * (1 + pick(4))), "", now);
          break;
        case 8:
        case 9:
          if (!reservations.empty()) {
            // Mostly recent reservations (older ones have likely expired).
            const size_t n = reservations.size();
            const auto [owner, id] = reservations[n - 1 - pick(std::min<size_t>(n, 6))];
            const size_t oi = static_cast<size_t>(owner - 1);
            ++pay_codes[Code(e.Pay(owner, tokens[oi], id, "", now))];
          }
          break;
        case 10:
          if (!reservations.empty()) {
            const auto [owner, id] = reservations[pick(reservations.size())];
            if (rng() % 2 == 0) {
              (void)e.Cancel(owner, id, now);
            } else {
              (void)e.ReleaseSeat(owner, id, 1 + static_cast<SeatId>(pick(30)), now);
            }
          }
          break;
        default:
          if (!reservations.empty()) {
            const auto [owner, id] = reservations[pick(reservations.size())];
            (void)e.Refund(owner, id, now);
          }
          break;
      }
    }
    if (step % 100 == 0) {
      const absl::Status inv = e.CheckInvariants();
      INFO("step " << step << ": " << inv);
      REQUIRE(inv.ok());
    }
  }
  const absl::Status inv = e.CheckInvariants();
  INFO(inv);
  REQUIRE(inv.ok());

  // Cross-check the public views: every SOLD seat belongs to exactly one
  // CONFIRMED reservation; revenue is the sum of confirmed amounts; money is
  // conserved (charges - payments + refunds = sum of balances).
  std::set<SeatId> sold_by_reservations;
  Won confirmed_amount = 0;
  int64_t confirmed = 0;
  Won wallets = 0;
  Won charged = 0;
  Won paid = 0;
  Won refunded = 0;
  for (const UserId u : users) {
    absl::StatusOr<std::vector<Reservation>> rs = e.ListReservations(u, now);
    REQUIRE_OK(rs);
    for (const Reservation& r : *rs) {
      CHECK(r.user_id == u);
      if (r.status == ReservationStatus::kConfirmed) {
        ++confirmed;
        confirmed_amount += r.amount;
        for (SeatId s : r.seat_ids) CHECK(sold_by_reservations.insert(s).second);
      }
    }
    absl::StatusOr<Won> b = e.Balance(u, now);
    REQUIRE_OK(b);
    CHECK(*b >= 0);
    wallets += *b;
    absl::StatusOr<std::vector<HistoryEntry>> h = e.History(u, now);
    REQUIRE_OK(h);
    for (const HistoryEntry& x : *h) {
      if (x.kind == EntryKind::kCharge) charged += x.amount;
      if (x.kind == EntryKind::kPayment) paid += x.amount;
      if (x.kind == EntryKind::kRefund) refunded += x.amount;
    }
  }
  std::set<SeatId> sold_seats;
  for (ScheduleId s : {1, 2}) {
    absl::StatusOr<std::vector<SeatView>> seats = e.ListSeats(s, SeatStatus::kSold, now);
    REQUIRE_OK(seats);
    for (const SeatView& v : *seats) sold_seats.insert(v.id);
  }
  CHECK(sold_seats == sold_by_reservations);
  absl::StatusOr<ConcertStats> stats = e.Stats(1, now);
  REQUIRE_OK(stats);
  CHECK(stats->revenue == confirmed_amount);
  CHECK(stats->reservations_confirmed == confirmed);
  CHECK(stats->seats_sold == static_cast<int64_t>(sold_seats.size()));
  CHECK(charged - paid + refunded == wallets);
  CHECK(stats->revenue == paid - refunded);
  UNSCOPED_INFO("confirmed " << confirmed << ", users " << users.size());
  for (const auto& [code, count] : pay_codes) UNSCOPED_INFO("pay " << code << ": " << count);
  // The workload did exercise payments (refunds may have undone them since).
  CHECK(pay_codes["OK"] > 0);
  CHECK(paid > 0);
}

BatchCommand Cmd(Op op, TimeUs now, int64_t user = 0, int64_t token = 0,
                 int64_t target = 0, int64_t arg = 0, uint16_t quantity = 0, uint8_t grade = 0) {
  BatchCommand c;
  c.op = static_cast<uint8_t>(op);
  c.now_us = now;
  c.user = user;
  c.token = token;
  c.target = target;
  c.arg = arg;
  c.quantity = quantity;
  c.grade = grade;
  return c;
}

// What the batch result of a single call should be, per batch.h.
BatchResult Expected(const BatchCommand& c, Engine& e) {
  BatchResult r;
  auto fill_code = [&r](const absl::Status& s) {
    r.code = static_cast<uint16_t>(GetErrorCode(s));
  };
  auto fill_token = [&](const absl::StatusOr<TokenView>& t, bool with_id) {
    fill_code(t.status());
    if (!t.ok()) return;
    if (with_id) r.id = t->id;
    r.status = static_cast<uint8_t>(t->status);
    r.value = t->position;
  };
  auto fill_reservation = [&](const absl::StatusOr<Reservation>& x, bool with_id) {
    fill_code(x.status());
    if (!x.ok()) return;
    if (with_id) r.id = x->id;
    r.status = static_cast<uint8_t>(x->status);
  };
  switch (static_cast<Op>(c.op)) {
    case Op::kAdvance:
      e.Advance(c.now_us);
      break;
    case Op::kCreateUser: {
      absl::StatusOr<UserId> u = e.CreateUser(c.now_us);
      fill_code(u.status());
      if (u.ok()) r.id = *u;
      break;
    }
    case Op::kJoin:
      fill_token(e.JoinQueue(c.user, c.target, c.now_us), true);
      break;
    case Op::kStatus:
      fill_token(e.QueueStatus(c.user, c.token, c.now_us), false);
      break;
    case Op::kLeave: {
      absl::StatusOr<TokenView> t = e.LeaveQueue(c.user, c.token, c.now_us);
      fill_code(t.status());
      if (t.ok()) r.status = static_cast<uint8_t>(t->status);
      break;
    }
    case Op::kHold: {
      HoldRequest h;
      h.user_id = c.user;
      h.token_id = c.token;
      h.schedule_id = c.target;
      if (c.arg != 0) {  // explicit seats; arg 0 is best-available
        for (int64_t k = 0; k < c.quantity; ++k) h.seat_ids.push_back(c.arg + k);
      } else {
        h.quantity = c.quantity;
        if (c.grade == 1) h.grade = "VIP";
        if (c.grade == 2) h.grade = "R";
      }
      absl::StatusOr<Reservation> x = e.Hold(h, c.now_us);
      fill_reservation(x, true);
      if (x.ok()) r.value = x->amount;
      break;
    }
    case Op::kReleaseSeat:
      fill_reservation(e.ReleaseSeat(c.user, c.target, c.arg, c.now_us), false);
      break;
    case Op::kCancel:
      fill_reservation(e.Cancel(c.user, c.target, c.now_us), false);
      break;
    case Op::kCharge: {
      absl::StatusOr<ChargeResult> x = e.Charge(c.user, c.arg, "", c.now_us);
      fill_code(x.status());
      if (x.ok()) {
        r.id = x->entry_id;
        r.value = x->balance;
      }
      break;
    }
    case Op::kPay: {
      absl::StatusOr<Payment> x = e.Pay(c.user, c.token, c.target, "", c.now_us);
      fill_code(x.status());
      if (x.ok()) {
        r.id = x->id;
        r.value = x->amount;
      }
      break;
    }
    case Op::kRefund: {
      absl::StatusOr<Reservation> x = e.Refund(c.user, c.target, c.now_us);
      fill_reservation(x, false);
      if (x.ok()) r.value = x->amount;
      break;
    }
    default:  // CREATE_CONCERT has no batch form; GATE is not in these scripts
      break;
  }
  return r;
}

TEST_CASE("ApplyBatch gives the same results and state as single calls", "[engine][batch]") {
  EngineConfig config;
  config.seed = 5;
  Engine batch(config);
  Engine single(config);
  ConcertSpec spec = SmallConcert();
  spec.sale.queue_capacity = 2;
  spec.sale.hold_ttl_us = Sec(30);
  REQUIRE_OK(batch.CreateConcert(spec, kT0));
  REQUIRE_OK(single.CreateConcert(spec, kT0));

  const TimeUs t = kT0 + Sec(1);
  // Users 1..3; tokens 1..3 (token 3 waits); schedule 1.
  const std::vector<BatchCommand> commands = {
      Cmd(Op::kCreateUser, t),
      Cmd(Op::kCreateUser, t),
      Cmd(Op::kCreateUser, t),
      Cmd(Op::kJoin, t, 1, 0, 1),
      Cmd(Op::kJoin, t, 2, 0, 1),
      Cmd(Op::kJoin, t + 1, 3, 0, 1),
      Cmd(Op::kStatus, t + 2, 3, 3),
      Cmd(Op::kCharge, t + 3, 1, 0, 0, 400'000),
      Cmd(Op::kCharge, t + 3, 2, 0, 0, 0),  // INVALID_AMOUNT
      Cmd(Op::kHold, t + 4, 1, 1, 1, 1, 3),     // seats 1..3 -> reservation 1
      Cmd(Op::kHold, t + 5, 2, 2, 1, 3, 2),     // seat 3 taken
      Cmd(Op::kHold, t + 6, 2, 2, 1, 0, 2, 2),  // 2 R seats -> reservation 2
      Cmd(Op::kHold, t + 6, 3, 3, 1, 0, 1, 0),  // WAITING: QUEUE_NOT_ACTIVE
      Cmd(Op::kReleaseSeat, t + 7, 1, 0, 1, 2),
      Cmd(Op::kPay, t + 8, 1, 1, 1),            // 200,000 -> token 1 completes
      Cmd(Op::kStatus, t + 9, 3, 3),            // now ACTIVE
      Cmd(Op::kPay, t + 9, 2, 2, 2),            // INSUFFICIENT_BALANCE
      Cmd(Op::kRefund, t + 10, 1, 0, 1),
      Cmd(Op::kRefund, t + 10, 1, 0, 1),        // RESERVATION_NOT_CONFIRMED
      Cmd(Op::kHold, t + 11, 3, 3, 1, 1, 1),    // the refunded seat -> reservation 3
      Cmd(Op::kCancel, t + 12, 3, 0, 3),
      Cmd(Op::kCancel, t + 12, 3, 0, 99),       // RESERVATION_NOT_FOUND
      Cmd(Op::kAdvance, t + Sec(60)),           // reservation 2 expires
      Cmd(Op::kCancel, t + Sec(61), 2, 0, 2),   // HOLD_EXPIRED
      Cmd(Op::kLeave, t + Sec(62), 2, 2),
      Cmd(Op::kStatus, t + Sec(62), 2, 2),
      Cmd(Op::kJoin, t + Sec(63), 99, 0, 1),    // USER_NOT_FOUND
  };
  std::vector<BatchResult> results(commands.size());
  batch.ApplyBatch(commands, results);

  for (size_t i = 0; i < commands.size(); ++i) {
    const BatchResult want = Expected(commands[i], single);
    INFO("command " << i << " op " << static_cast<int>(commands[i].op) << " expected code "
                    << CodeName(static_cast<ErrorCode>(want.code)) << " got "
                    << CodeName(static_cast<ErrorCode>(results[i].code)));
    CHECK(results[i].code == want.code);
    if (want.code != 0) continue;
    // Compare the fields batch.h defines for each op.
    bool state = false;
    bool id = false;
    bool value = false;
    switch (static_cast<Op>(commands[i].op)) {
      case Op::kCreateUser:
        id = true;
        break;
      case Op::kJoin:
        id = state = value = true;
        break;
      case Op::kStatus:
        state = value = true;
        break;
      case Op::kLeave:
      case Op::kReleaseSeat:
      case Op::kCancel:
        state = true;
        break;
      case Op::kHold:
      case Op::kCharge:
      case Op::kPay:
        id = value = true;
        break;
      case Op::kRefund:
        value = true;
        break;
      default:
        break;
    }
    if (state) CHECK(static_cast<int>(results[i].status) == static_cast<int>(want.status));
    if (id) CHECK(results[i].id == want.id);
    if (value) CHECK(results[i].value == want.value);
  }
  // Spot checks that the script did what the comments say.
  CHECK(CodeName(static_cast<ErrorCode>(results[8].code)) == "INVALID_AMOUNT");
  CHECK(results[9].id == 1);
  CHECK(results[9].value == 300'000);
  CHECK(CodeName(static_cast<ErrorCode>(results[10].code)) == "SEAT_UNAVAILABLE");
  CHECK(CodeName(static_cast<ErrorCode>(results[12].code)) == "QUEUE_NOT_ACTIVE");
  CHECK(results[14].value == 200'000);
  CHECK(results[15].status == static_cast<uint8_t>(TokenStatus::kActive));
  CHECK(CodeName(static_cast<ErrorCode>(results[16].code)) == "INSUFFICIENT_BALANCE");
  CHECK(CodeName(static_cast<ErrorCode>(results[23].code)) == "HOLD_EXPIRED");
  CHECK(CodeName(static_cast<ErrorCode>(results[26].code)) == "USER_NOT_FOUND");

  CHECK(batch.StateHash() == single.StateHash());
  CHECK(batch.last_event_seq() == single.last_event_seq());

  // An unknown op is an error result, not a crash, and changes nothing.
  const uint64_t hash = batch.StateHash();
  std::vector<BatchCommand> junk = {Cmd(static_cast<Op>(200), t + Sec(63), 1)};
  std::vector<BatchResult> junk_results(1);
  batch.ApplyBatch(junk, junk_results);
  CHECK(junk_results[0].code != 0);
  CHECK(batch.StateHash() == hash);
  CHECK(batch.clock() == single.clock());
  CHECK(batch.CheckInvariants().ok());
}

TEST_CASE("the clock never goes back", "[engine][clock]") {
  Drop d;
  const auto [a, ta] = d.ActiveUser(kT0 + Sec(100));
  CHECK(d.engine.clock() == kT0 + Sec(100));

  // A command stamped earlier takes effect at the engine clock.
  absl::StatusOr<Reservation> r = d.Hold(a, ta, {1}, kT0 + Sec(50));
  REQUIRE_OK(r);
  CHECK(r->created_at == kT0 + Sec(100));
  CHECK(r->expires_at == kT0 + Sec(400));
  CHECK(d.engine.clock() == kT0 + Sec(100));
  const std::vector<Event> ev = d.EventsSince(0);
  CHECK(ev.back().at == kT0 + Sec(100));

  // Once time has passed expires_at, an earlier timestamp cannot revive the hold.
  d.engine.Advance(kT0 + Sec(400));
  CHECK(d.engine.clock() == kT0 + Sec(400));
  CHECK(Name(d.Get(a, r->id, kT0 + Sec(200)).status) == "EXPIRED");
  CHECK(Code(d.engine.Pay(a, ta, r->id, "", kT0 + Sec(200))) == "HOLD_EXPIRED");
  absl::StatusOr<ChargeResult> c = d.engine.Charge(a, 10, "", kT0);
  REQUIRE_OK(c);
  CHECK(c->at == kT0 + Sec(400));
  CHECK(d.engine.clock() == kT0 + Sec(400));
  for (size_t i = 1; i < d.EventsSince(0).size(); ++i) {
    CHECK(d.EventsSince(0)[i].at >= d.EventsSince(0)[i - 1].at);
  }
  d.CheckInvariants();
}

}  // namespace
}  // namespace boxoffice

namespace boxoffice {
namespace {

// Found by fuzz/journal_record_fuzzer: a C++ caller or a damaged journal record
// with an impossible time or seat range must be refused, not overflow.
TEST_CASE("times outside [0, kTimeMaxUs] are refused before anything moves",
          "[engine][fuzz-regression]") {
  Drop d;
  const UserId u = d.NewUser();
  const uint64_t before = d.engine.StateHash();
  for (TimeUs bad : {TimeUs{-1}, kTimeMaxUs + 1, std::numeric_limits<TimeUs>::max()}) {
    CHECK(Code(d.engine.JoinQueue(u, d.concert, bad)) == "INVALID_ARGUMENT");
    CHECK(Code(d.engine.CreateUser(bad)) == "INVALID_ARGUMENT");
    CHECK(Code(d.engine.Charge(u, 1000, "key", bad)) == "INVALID_ARGUMENT");
    CHECK(Code(d.engine.Balance(u, bad)) == "INVALID_ARGUMENT");
    CHECK(Code(d.engine.Stats(d.concert, bad)) == "INVALID_ARGUMENT");
    d.engine.Advance(bad);
    (void)d.engine.ListConcerts("", std::nullopt, std::nullopt, bad);
  }
  CHECK(d.engine.StateHash() == before);
  CHECK(d.engine.clock() == kT0);
  d.CheckInvariants();
}

TEST_CASE("a batch hold whose seat range overflows is SEAT_NOT_FOUND",
          "[engine][fuzz-regression]") {
  Drop d;
  const auto [u, t] = d.ActiveUser();
  BatchCommand c;
  c.op = static_cast<uint8_t>(Op::kHold);
  c.now_us = kT0 + Sec(1);
  c.user = u;
  c.token = t;
  c.target = d.schedule;
  c.arg = std::numeric_limits<int64_t>::max();
  c.quantity = 2;
  BatchResult r;
  d.engine.ApplyBatch(std::span(&c, 1), std::span(&r, 1));
  CHECK(CodeName(static_cast<ErrorCode>(r.code)) == "SEAT_NOT_FOUND");
  d.CheckInvariants();
}

}  // namespace
}  // namespace boxoffice
