// Shared pieces of the fuzz targets and of make_corpus: how a failed check
// stops the run, a CommandSink that encodes what it records, the batch
// numbering of journal record type 13, the fixed starting state of
// journal_record_fuzzer and result_fuzzer (whose ids the seed records name),
// and the input layout of command_sequence_fuzzer (which make_corpus writes).
//
// A failed check prints one line saying what broke and aborts: libFuzzer
// treats the abort like a crash and writes the input to a crash-* file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/types.h"

namespace boxoffice_fuzz {

using namespace boxoffice;  // NOLINT: the fuzzers name many core types

// 2023-11-14T22:13:20Z: a plausible drop date; every fuzzed time is near it.
inline constexpr TimeUs kT0 = 1'700'000'000 * kMicrosPerSecond;

[[noreturn]] inline void Fail(absl::string_view what) {
  std::fprintf(stderr, "boxoffice fuzz: check failed: %.*s\n", static_cast<int>(what.size()),
               what.data());
  std::abort();
}

inline void Check(bool ok, absl::string_view what) {
  if (!ok) [[unlikely]] Fail(what);
}

inline void CheckInvariants(Engine& engine, absl::string_view after) {
  if (absl::Status s = engine.CheckInvariants(); !s.ok()) [[unlikely]] {
    std::string what(after);
    what += ": ";
    what += s.ToString();
    Fail(what);
  }
}

// Field by field: the sale settings a command or a Result carries.
inline bool SameSale(const SaleSettings& a, const SaleSettings& b) {
  return a.opens_at == b.opens_at && a.queue_capacity == b.queue_capacity &&
         a.admission_per_minute == b.admission_per_minute &&
         a.session_ttl_us == b.session_ttl_us && a.hold_ttl_us == b.hold_ttl_us &&
         a.max_seats_per_reservation == b.max_seats_per_reservation &&
         a.max_seats_per_user == b.max_seats_per_user &&
         a.release_on_payment_failure == b.release_on_payment_failure &&
         a.abandon_timeout_us == b.abandon_timeout_us &&
         a.poll_interval_us == b.poll_interval_us;
}

// Records every command as its journal encoding, as the store's writer does.
class EncodingSink : public CommandSink {
 public:
  Seq Record(const Command& command) override {
    std::string bytes;
    EncodeCommand(command, &bytes);
    records.push_back(std::move(bytes));
    return static_cast<Seq>(records.size());
  }
  std::vector<std::string> records;
};

// Journal record type 13 (kLegacyBatchRecord, command.h) holds a batch command in the
// batch numbering journals used before Op numbered batches too. The engine still
// applies such records, so the fuzzers write and check them.
enum LegacyBatchOp : uint8_t {
  kLegacyAdvance = 0,
  kLegacyCreateUser,
  kLegacyJoin,
  kLegacyStatus,
  kLegacyLeave,
  kLegacyHold,         // explicit seats arg .. arg + quantity - 1
  kLegacyHoldBest,     // best-available: quantity, grade (0 = any, k = the k-th grade)
  kLegacyReleaseSeat,
  kLegacyCancel,
  kLegacyCharge,
  kLegacyPay,
  kLegacyRefund,
  kLegacyBatchOpCount
};

// The Op a legacy batch op stands for; Op::kCount for a number it never had.
inline Op LegacyBatchOpToOp(uint8_t legacy) {
  constexpr Op kOps[kLegacyBatchOpCount] = {
      Op::kAdvance, Op::kCreateUser, Op::kJoin,   Op::kStatus, Op::kLeave,  Op::kHold,
      Op::kHold,    Op::kReleaseSeat, Op::kCancel, Op::kCharge, Op::kPay,   Op::kRefund};
  return legacy < kLegacyBatchOpCount ? kOps[legacy] : Op::kCount;
}

// --- journal_record_fuzzer, result_fuzzer: the state a fuzzed command is applied to ---

// Built by BuildPrelude at times kT0 .. kPreludeEnd through the public API:
//   users 1..4;
//   concert 1, schedule 1: section A 2x4 "VIP" 100,000 won (seats 1..8), section B 2x4
//     "R" 50,000 won (seats 9..16); capacity 2, hold TTL 5 s, session TTL 60 s,
//     abandon 20 s, poll 5 s, at most 4 seats per reservation;
//   concert 2, schedule 2: section S 2x3 "S" 70,000 won (seats 17..22); opens at
//     kT0 + 30 s (a pre-queue), capacity 1, 6 admissions per minute, at most 4 seats
//     per user, release_on_payment_failure;
//   tokens: 1 user 1 ACTIVE (concert 1), 2 user 2 COMPLETED by its payment, 3 user 3
//     ACTIVE (admitted when 2 completed), 4 user 4 and 5 user 1 in concert 2's pre-queue;
//   balances: user 1 300,000 (charged with key "charge-1"), user 2 50,000 after paying;
//   reservations: 1 user 1 PENDING seats {1, 2} (key "hold-1", expires kT0 + 7 s),
//     2 user 2 CONFIRMED one "R" seat (pay key "pay-2"), 3 user 3 PENDING seat {3}
//     (expires kT0 + 7 s).
struct Prelude {
  static constexpr int64_t kUsers = 4;
  static constexpr SeatId kSeats = 22;
  static constexpr TimeUs kEnd = kT0 + 2 * kMicrosPerSecond;  // the clock afterwards
  static constexpr TimeUs kHoldExpiry = kT0 + 7 * kMicrosPerSecond;
  static constexpr TimeUs kOpens2 = kT0 + 30 * kMicrosPerSecond;
};

inline ConcertSpec PreludeConcert(int which) {
  ConcertSpec spec;
  ScheduleSpec s;
  s.starts_at = kT0 + 90 * 24 * 3600 * kMicrosPerSecond;
  if (which == 1) {
    spec.title = "fuzz one";
    spec.artist = "the fuzzers";
    s.sections.push_back({"A", 2, 4, "VIP", 100'000});
    s.sections.push_back({"B", 2, 4, "R", 50'000});
    spec.sale.queue_capacity = 2;
    spec.sale.hold_ttl_us = 5 * kMicrosPerSecond;
    spec.sale.session_ttl_us = 60 * kMicrosPerSecond;
    spec.sale.abandon_timeout_us = 20 * kMicrosPerSecond;
  } else {
    spec.title = "fuzz two";
    s.sections.push_back({"S", 2, 3, "S", 70'000});
    spec.sale.opens_at = Prelude::kOpens2;
    spec.sale.queue_capacity = 1;
    spec.sale.admission_per_minute = 6;
    spec.sale.max_seats_per_user = 4;
    spec.sale.release_on_payment_failure = true;
    spec.sale.hold_ttl_us = 5 * kMicrosPerSecond;
    spec.sale.session_ttl_us = 20 * kMicrosPerSecond;
    spec.sale.abandon_timeout_us = 10 * kMicrosPerSecond;
  }
  spec.sale.poll_interval_us = 5 * kMicrosPerSecond;
  spec.schedules.push_back(std::move(s));
  return spec;
}

// Builds the state above in `engine` (fresh); aborts if the API no longer gives it.
inline void BuildPrelude(Engine& engine) {
  auto ok = [](const absl::Status& s, const char* step) {
    if (!s.ok()) Fail(std::string("prelude: ") + step + ": " + s.ToString());
  };
  for (int64_t u = 1; u <= Prelude::kUsers; ++u) ok(engine.CreateUser(kT0).status(), "user");
  ok(engine.CreateConcert(PreludeConcert(1), kT0).status(), "concert 1");
  ok(engine.CreateConcert(PreludeConcert(2), kT0).status(), "concert 2");
  const TimeUs t1 = kT0 + kMicrosPerSecond;
  ok(engine.JoinQueue(1, 1, t1).status(), "join 1");
  ok(engine.JoinQueue(2, 1, t1).status(), "join 2");
  ok(engine.JoinQueue(3, 1, t1).status(), "join 3");
  ok(engine.JoinQueue(4, 2, t1).status(), "join 4");
  ok(engine.JoinQueue(1, 2, t1).status(), "join 5");
  ok(engine.Charge(1, 300'000, "charge-1", t1).status(), "charge 1");
  ok(engine.Charge(2, 100'000, "", t1).status(), "charge 2");
  const TimeUs t2 = Prelude::kEnd;
  ok(engine.Hold(HoldRequest{1, 1, 1, {1, 2}, 0, "", "hold-1"}, t2).status(), "hold 1");
  ok(engine.Hold(HoldRequest{2, 2, 1, {}, 1, "R", ""}, t2).status(), "hold 2");
  ok(engine.Pay(2, 2, 2, "pay-2", t2).status(), "pay 2");
  ok(engine.Hold(HoldRequest{3, 3, 1, {3}, 0, "", ""}, t2).status(), "hold 3");
  CheckInvariants(engine, "prelude");
}

// --- command_sequence_fuzzer: the input layout ----------------------------------------

// An input is a kSequenceHeaderBytes header (the engine and concert settings), then
// steps of kSequenceStepBytes each: byte 0 picks the operation (SequenceOp, modulo
// kSequenceOpCount), byte 1 the time jump before it, bytes 2..7 its arguments. Bytes
// past the end read as zero; a batch step takes its commands from the steps after it.
inline constexpr size_t kSequenceHeaderBytes = 16;
inline constexpr size_t kSequenceStepBytes = 8;

enum SequenceOp : uint8_t {
  kOpJoin = 0,
  kOpStatus,
  kOpLeave,
  kOpGate,
  kOpHoldSeats,
  kOpHoldBest,
  kOpReleaseSeat,
  kOpCancel,
  kOpCharge,
  kOpPay,
  kOpRefund,
  kOpAdvance,
  kOpBatch,
  kOpQuery,
  kOpCreateUser,
  kOpCreateConcert,
  kSequenceOpCount
};

// Byte 1 of a step, low nibble: how far time moves before the operation.
enum TimeJump : uint8_t {
  kJumpNone = 0,
  kJumpMicro,          // 1 µs
  kJumpMilli,          // 1 ms
  kJumpQuarters,       // (high nibble + 1) x 250 ms
  kJumpSeconds,        // (high nibble + 1) s
  kJumpToDeadline,     // exactly onto a known deadline (high nibble picks which)
  kJumpBeforeDeadline, // 1 µs before it
  kJumpAfterDeadline,  // 1 µs after it
  kJumpBack,           // a stale caller: now is 1 s behind the clock
  kJumpLong,           // (high nibble + 1) minutes
  kTimeJumpCount
};

}  // namespace boxoffice_fuzz
