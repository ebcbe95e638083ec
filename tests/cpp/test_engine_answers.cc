// The questions an HTTP request asks, each answered by the engine in one call:
// whether a join made a new token (201) or returned the live one (200), and the
// seats page behind the gate (the gate, the schedule's concert and the page
// under one lock, journaled as the one GATE command it is).
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"

using namespace boxoffice;  // NOLINT: tests name many core types

namespace {

constexpr TimeUs kT0 = 1'700'000'000LL * kMicrosPerSecond;
constexpr DurationUs Sec(int64_t s) { return s * kMicrosPerSecond; }

std::string Code(const absl::Status& s) {
  return std::string(GetErrorInfo(GetErrorCode(s)).name);
}

// Keeps the commands themselves (their encoding is test_command.cc's subject).
struct CommandList : CommandSink {
  Seq Record(const Command& c) override {
    records.push_back(c);
    return static_cast<Seq>(records.size());
  }
  std::vector<Command> records;
};

// One schedule of 2 x 5 seats (ids first..first+9) and a queue of capacity 1.
ConcertSpec Concert() {
  ConcertSpec spec;
  spec.title = "one call";
  ScheduleSpec s;
  s.starts_at = 1'900'000'000LL * kMicrosPerSecond;
  s.sections.push_back({"A", 2, 5, "VIP", 100'000});
  spec.schedules.push_back(s);
  spec.sale.queue_capacity = 1;
  spec.sale.abandon_timeout_us = Sec(60);
  return spec;
}

struct Hall {
  Engine engine;
  ConcertId concert = 0;
  ScheduleId schedule = 0;
  ConcertId other = 0;
  ScheduleId other_schedule = 0;

  // `sink` (optional) records everything from the start, so its records replay.
  explicit Hall(CommandSink* sink = nullptr) {
    if (sink != nullptr) engine.SetCommandSink(sink);
    absl::StatusOr<ConcertView> c = engine.CreateConcert(Concert(), kT0);
    absl::StatusOr<ConcertView> o = engine.CreateConcert(Concert(), kT0);
    REQUIRE((c.ok() && o.ok()));
    concert = c->id;
    schedule = c->schedules.at(0).id;
    other = o->id;
    other_schedule = o->schedules.at(0).id;
  }
  UserId User() {
    absl::StatusOr<UserId> u = engine.CreateUser(kT0);
    REQUIRE(u.ok());
    return *u;
  }
  TokenView Join(UserId user, TimeUs now, ConcertId in = 0) {
    absl::StatusOr<TokenView> t = engine.JoinQueue(user, in == 0 ? concert : in, now);
    REQUIRE(t.ok());
    return *t;
  }
  absl::StatusOr<std::vector<SeatView>> Page(UserId user, TokenId token, ScheduleId schedule_id,
                                             TimeUs now, SeatId after = 0, int64_t limit = 100) {
    return engine.ListSeatsGated(user, token, concert, schedule_id, std::nullopt, after, limit,
                                 now);
  }
};

}  // namespace

TEST_CASE("a join says whether it made the token or returned the live one", "[engine][queue]") {
  Hall h;
  const UserId a = h.User();
  const UserId b = h.User();
  const TokenView first = h.Join(a, kT0 + 1);
  CHECK(first.created);
  const TokenView again = h.Join(a, kT0 + 2);
  CHECK(again.id == first.id);
  CHECK_FALSE(again.created);

  // WAITING tokens too (capacity 1), and only the join's answer carries the flag.
  const TokenView waiting = h.Join(b, kT0 + 3);
  REQUIRE(waiting.status == TokenStatus::kWaiting);
  CHECK(waiting.created);
  CHECK_FALSE(h.Join(b, kT0 + 4).created);
  absl::StatusOr<TokenView> status = h.engine.QueueStatus(b, waiting.id, kT0 + 5);
  REQUIRE(status.ok());
  CHECK_FALSE(status->created);
  absl::StatusOr<TokenView> gate = h.engine.CheckGate(a, first.id, h.concert, kT0 + 5);
  REQUIRE(gate.ok());
  CHECK_FALSE(gate->created);

  // Once the token ended, joining again makes a new one.
  absl::StatusOr<TokenView> left = h.engine.LeaveQueue(a, first.id, kT0 + 6);
  REQUIRE(left.ok());
  CHECK_FALSE(left->created);
  const TokenView rejoined = h.Join(a, kT0 + 7);
  CHECK(rejoined.id != first.id);
  CHECK(rejoined.created);

  // A token of another concert is another place: new there.
  CHECK(h.Join(a, kT0 + 8, h.other).created);
}

TEST_CASE("the created flag is part of a token result's wire form", "[command]") {
  Hall h;
  const UserId a = h.User();
  for (bool created : {true, false}) {
    Result r = h.engine.Apply(Command{Op::kJoin, kT0 + 1, a, 0, h.concert});
    REQUIRE(r.ok());
    REQUIRE(std::get<TokenView>(r.value).created == created);  // first join, then the same
    std::string bytes;
    EncodeResult(r, &bytes);
    absl::StatusOr<Result> back = DecodeResult(bytes);
    REQUIRE(back.ok());
    CHECK(std::get<TokenView>(back->value).created == created);
    std::string again;
    EncodeResult(*back, &again);
    CHECK(again == bytes);
    // The flag is the token's last byte: any value but 0 and 1 is malformed, so a
    // result still has exactly one encoding.
    bytes.back() = 2;
    CHECK(absl::IsDataLoss(DecodeResult(bytes).status()));
  }
}

TEST_CASE("a refused gate is a Result with its code, message and details", "[engine][queue]") {
  Hall h;
  const UserId a = h.User();
  const UserId b = h.User();
  h.Join(a, kT0 + 1);                       // ACTIVE: the capacity is 1
  const TokenView waiting = h.Join(b, kT0 + 2);  // WAITING, one ahead
  const Result r = h.engine.Apply(Command{Op::kGate, kT0 + 3, b, waiting.id, h.concert});
  REQUIRE_FALSE(r.ok());
  CHECK(r.code == ErrorCode::kQueueNotActive);
  CHECK(r.kind() == Result::Kind::kNone);
  CHECK(r.message == "queue token " + std::to_string(waiting.id) + " is WAITING; 0 ahead");
  CHECK(r.details.position == std::optional<int64_t>(0));
  CHECK(r.details.eta_us.has_value());
  CHECK(r.details.retry_after_us == std::optional<int64_t>(Concert().sale.poll_interval_us));
  CHECK_FALSE(r.details.seat_id.has_value());

  // The typed call answers the same refusal as a Status.
  const absl::Status s = h.engine.CheckGate(b, waiting.id, h.concert, kT0 + 3).status();
  CHECK(Code(s) == "QUEUE_NOT_ACTIVE");
  CHECK(s.message() == r.message);
  CHECK(GetErrorDetails(s).position == r.details.position);
  CHECK(GetErrorDetails(s).eta_us == r.details.eta_us);
  CHECK(r.status().message() == r.message);
  CHECK(GetErrorCode(r.status()) == r.code);

  // A token of another concert, and one that is not the user's: QUEUE_TOKEN_INVALID.
  const Result other = h.engine.Apply(Command{Op::kGate, kT0 + 4, b, waiting.id, h.other});
  CHECK(other.code == ErrorCode::kQueueTokenInvalid);
  const Result stolen = h.engine.Apply(Command{Op::kGate, kT0 + 4, a, waiting.id, h.concert});
  CHECK(stolen.code == ErrorCode::kQueueTokenInvalid);
  CHECK(stolen.message == "queue token " + std::to_string(waiting.id) + " is not a token of user " +
                              std::to_string(a));
}

TEST_CASE("the seats page behind the gate answers in one call", "[engine][seats]") {
  Hall h;
  const UserId a = h.User();
  const UserId b = h.User();
  const TokenId ta = h.Join(a, kT0 + 1).id;
  const TokenId tb = h.Join(b, kT0 + 1).id;  // WAITING: capacity 1

  absl::StatusOr<std::vector<SeatView>> page = h.Page(a, ta, h.schedule, kT0 + 2, 0, 4);
  REQUIRE(page.ok());
  REQUIRE(page->size() == 4);
  CHECK(page->front().label == "A-1-1");
  absl::StatusOr<std::vector<SeatView>> rest =
      h.Page(a, ta, h.schedule, kT0 + 2, page->back().id, 100);
  REQUIRE(rest.ok());
  CHECK(rest->size() == 6);
  absl::StatusOr<std::vector<SeatView>> held = h.engine.ListSeatsGated(
      a, ta, h.concert, h.schedule, SeatStatus::kHeld, 0, 100, kT0 + 2);
  REQUIRE(held.ok());
  CHECK(held->empty());

  // The gate answers first, whatever the schedule.
  absl::StatusOr<std::vector<SeatView>> waiting = h.Page(b, tb, h.schedule, kT0 + 3);
  CHECK(Code(waiting.status()) == "QUEUE_NOT_ACTIVE");
  CHECK(GetErrorDetails(waiting.status()).position == std::optional<int64_t>(0));
  CHECK(Code(h.Page(b, tb, 999, kT0 + 3).status()) == "QUEUE_NOT_ACTIVE");
  CHECK(Code(h.Page(b, ta, h.schedule, kT0 + 3).status()) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(h.Page(99, ta, h.schedule, kT0 + 3).status()) == "USER_NOT_FOUND");
  CHECK(Code(h.engine.ListSeatsGated(a, ta, h.other, h.other_schedule, std::nullopt, 0, 10,
                                     kT0 + 3)
                 .status()) == "QUEUE_TOKEN_INVALID");  // the token is for the first concert
  // Then the schedule: unknown, or another concert's.
  CHECK(Code(h.Page(a, ta, 999, kT0 + 4).status()) == "SCHEDULE_NOT_FOUND");
  CHECK(Code(h.Page(a, ta, 0, kT0 + 4).status()) == "SCHEDULE_NOT_FOUND");
  CHECK(Code(h.Page(a, ta, h.other_schedule, kT0 + 4).status()) == "QUEUE_TOKEN_INVALID");
  CHECK(Code(h.Page(a, ta, h.schedule, -1).status()) == "INVALID_ARGUMENT");
  CHECK(h.engine.CheckInvariants().ok());
}

TEST_CASE("the gated seats page journals its gate, which counts as a poll", "[engine][seats]") {
  CommandList sink;
  Hall h(&sink);
  const UserId a = h.User();
  const UserId b = h.User();
  const TokenId ta = h.Join(a, kT0 + 1).id;
  const TokenId tb = h.Join(b, kT0 + 1).id;  // WAITING, abandoned after 60 s without a poll

  const size_t before = sink.records.size();
  REQUIRE(h.Page(a, ta, h.schedule, kT0 + 2).ok());
  REQUIRE(sink.records.size() == before + 1);  // the page itself is no record
  const Command& gate = sink.records.back();
  CHECK(gate.op == Op::kGate);
  CHECK((gate.user == a && gate.token == ta && gate.target == h.concert));
  CHECK(h.engine.LastRecordedSeq() == static_cast<Seq>(sink.records.size()));

  // A refused gate is recorded too, and keeps the WAITING place like any poll.
  for (int64_t t = 50; t <= 200; t += 50) {
    CHECK(Code(h.Page(b, tb, h.schedule, kT0 + Sec(t)).status()) == "QUEUE_NOT_ACTIVE");
  }
  absl::StatusOr<TokenView> still = h.engine.QueueStatus(b, tb, kT0 + Sec(201));
  REQUIRE(still.ok());
  CHECK(still->status == TokenStatus::kWaiting);
  // A refused schedule still passed the gate: the gate was journaled.
  const size_t records = sink.records.size();
  CHECK(Code(h.Page(a, ta, 999, kT0 + Sec(202)).status()) == "SCHEDULE_NOT_FOUND");
  CHECK(sink.records.size() == records + 1);

  // Replaying the records gives the same state.
  Engine replayed;
  for (const Command& c : sink.records) (void)replayed.Apply(c);
  CHECK(replayed.StateHash() == h.engine.StateHash());
  h.engine.SetCommandSink(nullptr);
}
