// Command records: the encoding round-trips, bad bytes are refused without a
// crash, and replaying the recorded commands rebuilds the same state.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"

using namespace boxoffice;  // NOLINT: tests name many core types

namespace {

class VectorSink : public CommandSink {
 public:
  Seq Record(const Command& c) override {
    std::string bytes;
    EncodeCommand(c, &bytes);
    records.push_back(std::move(bytes));
    return static_cast<Seq>(records.size());
  }
  std::vector<std::string> records;
};

ConcertSpec SmallConcert(TimeUs opens_at) {
  ConcertSpec spec;
  spec.title = "replay";
  ScheduleSpec s;
  s.starts_at = 1'900'000'000 * kMicrosPerSecond;
  s.sections.push_back({"A", 3, 6, "VIP", 150'000});
  s.sections.push_back({"B", 4, 8, "R", 90'000});
  spec.schedules.push_back(s);
  spec.sale.queue_capacity = 3;
  spec.sale.hold_ttl_us = 20 * kMicrosPerSecond;
  spec.sale.session_ttl_us = 60 * kMicrosPerSecond;
  spec.sale.abandon_timeout_us = 30 * kMicrosPerSecond;
  spec.sale.admission_per_minute = 30;
  spec.sale.opens_at = opens_at;
  return spec;
}

// A random stream of commands and queries, successful or not, through the
// public API of `engine`.
void RandomWorkload(Engine& engine, uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  TimeUs now = 1'000 * kMicrosPerSecond;
  for (int u = 0; u < 8; ++u) (void)engine.CreateUser(now);
  (void)engine.CreateConcert(SmallConcert(now + 10 * kMicrosPerSecond), now);
  (void)engine.CreateConcert(SmallConcert(kNever), now);
  std::vector<TokenId> token_of(10, 0);  // the user's last token, mostly valid
  std::vector<ReservationId> reservation_of(10, 0);  // the user's last reservation
  for (int i = 0; i < steps; ++i) {
    now += pick(0, 4) * kMicrosPerSecond / 2;
    const UserId user = pick(0, 9);
    const TokenId token = pick(0, 9) == 0 ? pick(0, 20) : token_of[static_cast<size_t>(user)];
    const int64_t res = pick(0, 3) == 0 ? pick(0, 15) : reservation_of[static_cast<size_t>(user)];
    switch (pick(0, 15)) {
      case 0:
        if (auto t = engine.JoinQueue(user, pick(1, 2), now); t.ok()) {
          token_of[static_cast<size_t>(user)] = t->id;
        }
        break;
      case 1: (void)engine.QueueStatus(user, token, now); break;
      case 2: (void)engine.LeaveQueue(user, token, now); break;
      case 3: (void)engine.CheckGate(user, token, pick(1, 2), now); break;
      case 4: {
        HoldRequest r;
        r.user_id = user;
        r.token_id = token;
        r.schedule_id = pick(1, 2);
        const SeatId first = r.schedule_id == 1 ? 1 : 51;
        for (int k = 0, n = static_cast<int>(pick(1, 3)); k < n; ++k) {
          r.seat_ids.push_back(first + pick(0, 49));
        }
        if (pick(0, 2) == 0) r.idempotency_key = "k" + std::to_string(pick(0, 3));
        if (auto h = engine.Hold(r, now); h.ok()) reservation_of[static_cast<size_t>(user)] = h->id;
        break;
      }
      case 5: {
        HoldRequest r;
        r.user_id = user;
        r.token_id = token;
        r.schedule_id = pick(1, 2);
        r.quantity = pick(1, 4);
        if (pick(0, 1) == 0) r.grade = pick(0, 1) == 0 ? "VIP" : "R";
        if (auto h = engine.Hold(r, now); h.ok()) {
          reservation_of[static_cast<size_t>(user)] = h->id;
          if (pick(0, 1) == 0) {  // a decided buyer: top up and pay at once
            (void)engine.Charge(user, h->amount, "", now);
            (void)engine.Pay(user, token, h->id, "", now);
          }
        }
        break;
      }
      case 6: (void)engine.ReleaseSeat(user, res, pick(1, 100), now); break;
      case 7: (void)engine.Cancel(user, res, now); break;
      case 8: (void)engine.Charge(user, pick(-1, 400'000), pick(0, 1) ? "c" : "", now); break;
      case 9: (void)engine.Pay(user, token, res, pick(0, 1) ? "p" : "", now); break;
      case 10: (void)engine.Refund(user, res, now); break;
      case 11: (void)engine.Balance(user, now + pick(0, 30) * kMicrosPerSecond); break;
      case 12: (void)engine.ListSeats(pick(1, 2), std::nullopt, now); break;
      case 13: {
        BatchCommand c;
        c.op = static_cast<uint8_t>(Op::kHold);  // arg 0: best-available
        c.now_us = now;
        c.user = user;
        c.token = token;
        c.target = pick(1, 2);
        c.quantity = static_cast<uint16_t>(pick(1, 3));
        BatchResult r;
        engine.ApplyBatch(std::span<const BatchCommand>(&c, 1), std::span<BatchResult>(&r, 1));
        break;
      }
      case 14: engine.Advance(now - kMicrosPerSecond); break;  // behind the clock: no-op
      default: (void)engine.Stats(pick(0, 2), now); break;
    }
  }
}

}  // namespace

TEST_CASE("every command type round-trips through its encoding") {
  std::mt19937_64 rng(42);
  // Every op, then the legacy batch record (type 13) that older journals hold.
  for (int t = 0; t <= kOpCount; ++t) {
    for (int i = 0; i < 50; ++i) {
      Command c;
      c.op = t < kOpCount ? static_cast<Op>(t) : Op::kAdvance;
      c.now = static_cast<int64_t>(rng()) >> (i % 60);
      if (t == kOpCount) {
        BatchCommand& b = c.legacy_batch.emplace();
        b.op = static_cast<uint8_t>(i % 12);
        b.grade = static_cast<uint8_t>(i);
        b.quantity = static_cast<uint16_t>(rng());
        b.now_us = c.now;
        b.user = -i;
        b.arg = static_cast<int64_t>(rng());
      } else if (c.op == Op::kCreateConcert) {
        auto spec = std::make_shared<ConcertSpec>(SmallConcert(i % 2 ? kNever : 5));
        spec->title = std::string("t\0x", 3) + std::to_string(i);
        c.concert = spec;
      } else if (c.op == Op::kHold) {
        c.user = i;
        c.token = -1;
        c.target = INT64_MAX;
        c.seats = {1, INT64_MIN, 3};
        c.quantity = i;
        c.grade = "VIP";
        c.key = std::string(100, 'k');
      } else if (c.op != Op::kAdvance && c.op != Op::kCreateUser) {
        c.user = static_cast<int64_t>(rng());
        c.token = i;
        c.target = -i;
        c.arg = INT64_MIN + i;
        c.key = i % 3 ? "" : "key";
      }
      std::string bytes;
      EncodeCommand(c, &bytes);
      absl::StatusOr<Command> back = DecodeCommand(bytes);
      REQUIRE(back.ok());
      CHECK(*back == c);
      CHECK(back->op == c.op);
      CHECK(back->legacy_batch.has_value() == (t == kOpCount));
      CHECK(back->now == c.now);
      std::string again;
      EncodeCommand(*back, &again);
      CHECK(again == bytes);
    }
  }
}

TEST_CASE("truncated, extended and random records are refused without a crash") {
  Command c;
  c.op = Op::kCreateConcert;
  c.now = 77;
  c.concert = std::make_shared<ConcertSpec>(SmallConcert(kNever));
  std::string bytes;
  EncodeCommand(c, &bytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<Command> r = DecodeCommand(absl::string_view(bytes).substr(0, n));
    CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  }
  CHECK(DecodeCommand(bytes + "x").status().code() == absl::StatusCode::kDataLoss);
  CHECK(DecodeCommand(std::string(1, '\x7f')).status().code() == absl::StatusCode::kDataLoss);
  std::mt19937_64 rng(9);
  int decoded = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string junk(static_cast<size_t>(rng() % 40), '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    decoded += DecodeCommand(junk).ok() ? 1 : 0;  // must simply not crash
  }
  CHECK(decoded < 20'000);
}

TEST_CASE("replaying the recorded commands rebuilds the same state") {
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    INFO("seed " << seed);
    VectorSink sink;
    Engine original(EngineConfig{Limits{}, seed});
    original.SetCommandSink(&sink);
    RandomWorkload(original, seed, 3'000);
    REQUIRE(original.CheckInvariants().ok());
    REQUIRE(sink.records.size() > 2'000);  // queries that keep the clock are not recorded
    // The workload reaches the interesting paths, not only errors.
    const auto a = original.Stats(1, 0);
    const auto b = original.Stats(2, 0);
    REQUIRE((a.ok() && b.ok()));
    CHECK(a->payments + b->payments > 0);
    CHECK(a->reservations_expired + b->reservations_expired > 0);
    CHECK(a->queue_admitted_total > 0);  // queries that keep the clock are not recorded

    Engine replayed(EngineConfig{Limits{}, seed});
    for (const std::string& bytes : sink.records) {
      absl::StatusOr<Command> c = DecodeCommand(bytes);
      REQUIRE(c.ok());
      (void)replayed.Apply(*c);
    }
    CHECK(replayed.StateHash() == original.StateHash());
    CHECK(replayed.clock() == original.clock());
    CHECK(replayed.last_event_seq() == original.last_event_seq());
    CHECK(replayed.CheckInvariants().ok());
  }
}

TEST_CASE("a query that moves the clock is recorded; one that does not is not") {
  VectorSink sink;
  Engine engine;
  engine.SetCommandSink(&sink);
  REQUIRE(engine.CreateUser(100).ok());
  REQUIRE(sink.records.size() == 1);
  CHECK(engine.LastRecordedSeq() == 1);
  (void)engine.Balance(1, 50);   // behind the clock: nothing changes
  CHECK(sink.records.size() == 1);
  (void)engine.Balance(1, 200);  // moves the clock
  REQUIRE(sink.records.size() == 2);
  absl::StatusOr<Command> c = DecodeCommand(sink.records[1]);
  REQUIRE(c.ok());
  CHECK(c->op == Op::kAdvance);
  CHECK(c->now == 200);
  CHECK(engine.LastRecordedSeq() == 2);
  engine.SetCommandSink(nullptr);
  REQUIRE(engine.CreateUser(300).ok());
  CHECK(sink.records.size() == 2);
}

// A sink whose writer has failed (disk full): the engine must refuse every command
// rather than change state that a restart from the journal would not have.
class FailingSink : public VectorSink {
 public:
  absl::Status Accepting() override {
    return failed ? MakeError(ErrorCode::kStoreUnavailable, "journal writer failed")
                  : absl::OkStatus();
  }
  bool failed = false;
};

TEST_CASE("once the sink stops accepting, every command is refused and nothing changes") {
  FailingSink sink;
  Engine engine;
  engine.SetCommandSink(&sink);
  const TimeUs t0 = 1'800'000'000 * kMicrosPerSecond;
  REQUIRE(engine.CreateUser(t0).ok());
  absl::StatusOr<ConcertView> concert = engine.CreateConcert(SmallConcert(kNever), t0);
  REQUIRE(concert.ok());
  const ScheduleId schedule = concert->schedules[0].id;
  absl::StatusOr<TokenView> token = engine.JoinQueue(1, concert->id, t0 + 1);
  REQUIRE(token.ok());
  REQUIRE(engine.Charge(1, 1'000'000, "", t0 + 2).ok());
  HoldRequest hold{1, token->id, schedule, {1, 2}, 0, "", ""};
  absl::StatusOr<Reservation> held = engine.Hold(hold, t0 + 3);
  REQUIRE(held.ok());

  sink.failed = true;
  const uint64_t before = engine.StateHash();
  const size_t records = sink.records.size();
  const TimeUs t = t0 + 4;
  auto refused = [](const absl::Status& s) {
    return GetErrorCode(s) == ErrorCode::kStoreUnavailable;
  };
  CHECK(refused(engine.CreateUser(t).status()));
  CHECK(refused(engine.CreateConcert(SmallConcert(kNever), t).status()));
  CHECK(refused(engine.JoinQueue(1, concert->id, t).status()));
  CHECK(refused(engine.QueueStatus(1, token->id, t).status()));
  CHECK(refused(engine.CheckGate(1, token->id, concert->id, t).status()));
  HoldRequest more{1, token->id, schedule, {3}, 0, "", ""};
  CHECK(refused(engine.Hold(more, t).status()));
  CHECK(refused(engine.ReleaseSeat(1, held->id, 1, t).status()));
  CHECK(refused(engine.Charge(1, 5, "", t).status()));
  CHECK(refused(engine.Pay(1, token->id, held->id, "", t).status()));
  CHECK(refused(engine.Cancel(1, held->id, t).status()));
  CHECK(refused(engine.Refund(1, held->id, t).status()));
  CHECK(refused(engine.LeaveQueue(1, token->id, t).status()));
  std::vector<BatchCommand> batch(2);
  batch[0].op = static_cast<uint8_t>(Op::kCreateUser);
  batch[0].now_us = t;
  batch[1].op = static_cast<uint8_t>(Op::kCharge);
  batch[1].now_us = t;
  batch[1].user = 1;
  batch[1].arg = 5;
  std::vector<BatchResult> results(batch.size());
  engine.ApplyBatch(batch, results);
  for (const BatchResult& r : results) {
    CHECK(r.code == static_cast<uint16_t>(ErrorCode::kStoreUnavailable));
  }
  CHECK(engine.StateHash() == before);
  CHECK(sink.records.size() == records);
  CHECK(engine.Balance(1, t0 + 3).value() == 1'000'000);  // reads still work
}
