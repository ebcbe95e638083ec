// make_corpus: writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/).
//
//   build/fuzz/make_corpus fuzz/corpus
//
// The seed inputs are deterministic, so rerunning this rewrites the same files:
//   journal_record_fuzzer/    one valid record of every Op and, as type-13 records
//                             (legacy-batch-*), of every op of the old batch numbering,
//                             naming the ids of the fuzzer's starting state (BuildPrelude),
//                             some that succeed and some that fail (taken seat, too little
//                             balance, reused idempotency key, a record at exactly a
//                             hold's expiry, a batch record refused on its arguments);
//   result_fuzzer/            encoded Results: what applying those records to the
//                             starting state gave (every kind of value, refusals with
//                             their details), and a few made by hand;
//   command_sequence_fuzzer/  scripted ticket drops in the step format of fuzz_common.h
//                             (join, hold, charge, pay, refund, expiry on the deadline,
//                             batches) under different sale settings, and a few random
//                             byte strings;
//   snapshot_fuzzer/          snapshots of small engines in different states; the v1-*
//                             files are the same states written by snapshot format
//                             version 1 (before the compact queue token, commit 53b8ba3),
//                             and v1-every-token-state is tests/cpp/data/snapshot-v1.bin.
//                             This program no longer writes them (only the current
//                             version); they stay so the fuzzer reaches the version-1
//                             reader LoadSnapshot keeps.
// libFuzzer grows its own copies in build/fuzz/corpus-work/; these stay small (< 1 MB).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "boxoffice/batch.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "boxoffice/snapshot.h"
#include "fuzz_common.h"

namespace boxoffice_fuzz {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Fail("cannot write " + (dir / name).string());
}

// --- journal records ----------------------------------------------------------------

Command Scalar(Op op, TimeUs now, int64_t user, int64_t token = 0, int64_t target = 0,
               int64_t arg = 0, std::string key = "") {
  Command c;
  c.op = op;
  c.now = now;
  c.user = user;
  c.token = token;
  c.target = target;
  c.arg = arg;
  c.key = std::move(key);
  return c;
}

Command HoldCommand(TimeUs now, int64_t user, int64_t token, int64_t schedule,
                    std::vector<SeatId> seats, int64_t quantity, std::string grade,
                    std::string key) {
  Command c = Scalar(Op::kHold, now, user, token, schedule, 0, std::move(key));
  c.seats = std::move(seats);
  c.quantity = quantity;
  c.grade = std::move(grade);
  return c;
}

// A journal record of type 13 (a batch command of an older journal).
Command LegacyBatchRecord(uint8_t op, TimeUs now, int64_t user, int64_t token, int64_t target,
                          int64_t arg, uint16_t quantity = 0, uint8_t grade = 0) {
  Command c;
  c.now = now;
  BatchCommand& b = c.legacy_batch.emplace();
  b.op = op;
  b.now_us = now;
  b.user = user;
  b.token = token;
  b.target = target;
  b.arg = arg;
  b.quantity = quantity;
  b.grade = grade;
  return c;
}

using Seeds = std::vector<std::pair<std::string, Command>>;

// The seed records, by file name: commands on the starting state (BuildPrelude).
Seeds JournalSeeds() {
  const TimeUs t = Prelude::kEnd + kMicrosPerSecond;
  const TimeUs expiry = Prelude::kHoldExpiry;
  Seeds records = {
      {"advance", Scalar(Op::kAdvance, t, 0)},
      {"advance-to-hold-expiry", Scalar(Op::kAdvance, expiry, 0)},
      {"advance-to-opening", Scalar(Op::kAdvance, Prelude::kOpens2, 0)},
      {"advance-a-day", Scalar(Op::kAdvance, t + 86'400 * kMicrosPerSecond, 0)},
      {"create-user", Scalar(Op::kCreateUser, t, 0)},
      {"join-full-queue", Scalar(Op::kJoin, t, 4, 0, 1)},
      {"join-pre-queue", Scalar(Op::kJoin, t, 3, 0, 2)},
      {"join-again", Scalar(Op::kJoin, t, 1, 0, 1)},
      {"join-after-opening", Scalar(Op::kJoin, Prelude::kOpens2 + 1, 2, 0, 2)},
      {"status", Scalar(Op::kStatus, t, 3, 3)},
      {"status-pre-queue", Scalar(Op::kStatus, t, 4, 4)},
      {"leave", Scalar(Op::kLeave, t, 1, 1)},
      {"leave-someone-elses", Scalar(Op::kLeave, t, 2, 1)},
      {"gate", Scalar(Op::kGate, t, 1, 1, 1)},
      {"gate-other-concert", Scalar(Op::kGate, t, 1, 1, 2)},
      {"gate-completed", Scalar(Op::kGate, t, 2, 2, 1)},
      {"gate-pre-queue", Scalar(Op::kGate, t, 4, 4, 2)},
      {"hold-seats", HoldCommand(t, 1, 1, 1, {4, 5}, 0, "", "")},
      {"hold-taken-seat", HoldCommand(t, 1, 1, 1, {3}, 0, "", "")},
      {"hold-best", HoldCommand(t, 1, 1, 1, {}, 2, "R", "k")},
      {"hold-best-any", HoldCommand(t, 3, 3, 1, {}, 3, "", "")},
      {"hold-retry-same-key", HoldCommand(t, 1, 1, 1, {1, 2}, 0, "", "hold-1")},
      {"hold-reused-key", HoldCommand(t, 1, 1, 1, {6}, 0, "", "hold-1")},
      {"hold-at-expiry", HoldCommand(expiry, 1, 1, 1, {1}, 0, "", "")},
      {"release-seat", Scalar(Op::kReleaseSeat, t, 1, 0, 1, 2)},
      {"release-last-seat", Scalar(Op::kReleaseSeat, t, 3, 0, 3, 3)},
      {"cancel", Scalar(Op::kCancel, t, 1, 0, 1)},
      {"cancel-at-expiry", Scalar(Op::kCancel, expiry, 1, 0, 1)},
      {"charge", Scalar(Op::kCharge, t, 3, 0, 0, 200'000, "c3")},
      {"charge-retry", Scalar(Op::kCharge, t, 1, 0, 0, 300'000, "charge-1")},
      {"charge-invalid", Scalar(Op::kCharge, t, 1, 0, 0, -5)},
      {"pay", Scalar(Op::kPay, t, 1, 1, 1, 0, "p1")},
      {"pay-at-expiry", Scalar(Op::kPay, expiry, 1, 1, 1)},
      {"pay-just-before-expiry", Scalar(Op::kPay, expiry - 1, 1, 1, 1)},
      {"pay-insufficient", Scalar(Op::kPay, t, 3, 3, 3)},
      {"pay-retry", Scalar(Op::kPay, t, 2, 2, 2, 0, "pay-2")},
      {"refund", Scalar(Op::kRefund, t, 2, 0, 2)},
      {"refund-pending", Scalar(Op::kRefund, t, 1, 0, 1)},
  };
  Command concert = Scalar(Op::kCreateConcert, t, 0);
  concert.concert = std::make_shared<const ConcertSpec>(PreludeConcert(1));
  records.emplace_back("create-concert", concert);
  ConcertSpec no_schedules = PreludeConcert(2);
  no_schedules.schedules.clear();
  concert.concert = std::make_shared<const ConcertSpec>(std::move(no_schedules));
  records.emplace_back("create-concert-refused", concert);

  // Type-13 records, in the old batch numbering (LegacyBatchOp, fuzz_common.h).
  const auto legacy = [&](std::string name, LegacyBatchOp op, TimeUs now, int64_t user,
                          int64_t token, int64_t target, int64_t arg, uint16_t quantity = 0,
                          uint8_t grade = 0) {
    records.emplace_back("legacy-batch-" + name,
                         LegacyBatchRecord(op, now, user, token, target, arg, quantity, grade));
  };
  legacy("advance", kLegacyAdvance, expiry, 0, 0, 0, 0);
  legacy("create-user", kLegacyCreateUser, t, 0, 0, 0, 0);
  legacy("join", kLegacyJoin, t, 4, 0, 1, 0);
  legacy("status", kLegacyStatus, t, 3, 3, 0, 0);
  legacy("leave", kLegacyLeave, t, 1, 1, 0, 0);
  legacy("hold", kLegacyHold, t, 1, 1, 1, 6, 2);
  legacy("hold-best", kLegacyHoldBest, t, 1, 1, 1, 0, 2, 2);
  legacy("release-seat", kLegacyReleaseSeat, t, 1, 0, 1, 1);
  legacy("cancel", kLegacyCancel, t, 3, 0, 3, 0);
  legacy("charge", kLegacyCharge, t, 3, 0, 0, 70'000);
  legacy("pay", kLegacyPay, t, 1, 1, 1, 0);
  legacy("refund", kLegacyRefund, t, 2, 0, 2, 0);
  // Refused on their arguments before any rule runs (journaled as a clock move), and
  // a number the old numbering never had.
  legacy("hold-too-many-seats", kLegacyHold, t, 1, 1, 1, 6, 9);
  legacy("hold-best-no-such-grade", kLegacyHoldBest, t, 1, 1, 1, 0, 2, 7);
  legacy("unknown-op", kLegacyBatchOpCount, t, 1, 1, 1, 0);
  return records;
}

void JournalRecords(const fs::path& dir, const Seeds& records) {
  for (const auto& [name, c] : records) {
    std::string bytes;
    EncodeCommand(c, &bytes);
    Write(dir, name, bytes);
  }
}

// --- results ----------------------------------------------------------------------------

// What each seed record gives on the starting state, and refusals with every detail.
void Results(const fs::path& dir, const Seeds& records) {
  for (const auto& [name, c] : records) {
    Engine e;
    BuildPrelude(e);
    std::string bytes;
    EncodeResult(e.Apply(c), &bytes);
    Write(dir, name, bytes);
  }
  const auto refused = [&](const std::string& name, ErrorCode code, const char* message,
                           const ErrorDetails& details) {
    std::string bytes;
    EncodeResult(Result::Refused(MakeError(code, message, details)), &bytes);
    Write(dir, "refused-" + name, bytes);
  };
  refused("queue-not-active", ErrorCode::kQueueNotActive, "queue token 6 is WAITING; 3 ahead",
          {.position = 3, .eta_us = 90 * kMicrosPerSecond, .retry_after_us = 5 * kMicrosPerSecond});
  refused("every-detail", ErrorCode::kInternal, "",
          {.position = 0, .eta_us = kNever, .seat_id = INT64_MAX, .retry_after_us = INT64_MIN});
  refused("store-unavailable", ErrorCode::kStoreUnavailable, "the journal cannot write", {});
}

// --- command sequences ------------------------------------------------------------------

class Script {
 public:
  explicit Script(std::initializer_list<uint8_t> header) : bytes_(kSequenceHeaderBytes, '\0') {
    size_t i = 0;
    for (uint8_t b : header) bytes_[i++] = static_cast<char>(b);
  }
  Script& Step(SequenceOp op, uint8_t jump, std::initializer_list<uint8_t> args = {}) {
    std::string s(kSequenceStepBytes, '\0');
    s[0] = static_cast<char>(op);
    s[1] = static_cast<char>(jump);
    size_t i = 2;
    for (uint8_t b : args) s[i++] = static_cast<char>(b);
    bytes_ += s;
    return *this;
  }
  // A raw step: a batch command (byte 0 = Op), after a kOpBatch step.
  Script& Raw(std::initializer_list<uint8_t> step) {
    std::string s(kSequenceStepBytes, '\0');
    size_t i = 0;
    for (uint8_t b : step) s[i++] = static_cast<char>(b);
    bytes_ += s;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

constexpr uint8_t Jump(TimeJump kind, uint8_t n = 0) {
  return static_cast<uint8_t>(kind | (n << 4));
}

// A drop on concert 1: three users join a queue of capacity 2, two hold and pay, one
// refunds, a hold expires exactly on its deadline, the waiting user gets in.
Script Drop(std::initializer_list<uint8_t> header) {
  Script s(header);
  s.Step(kOpJoin, kJumpNone, {1, 0})
      .Step(kOpJoin, kJumpMicro, {2, 0})
      .Step(kOpJoin, kJumpMicro, {3, 0})
      .Step(kOpCharge, Jump(kJumpQuarters), {1, 0, 164, 1})       // 300,000 won, key c1
      .Step(kOpHoldSeats, Jump(kJumpQuarters), {1, 0, 0, 0, 1, 0})  // two adjacent seats
      .Step(kOpPay, kJumpMilli, {1, 0, 0, 1, 0})                   // key p1
      .Step(kOpPay, kJumpMilli, {1, 0, 0, 1, 0})                   // the retry
      .Step(kOpStatus, kJumpMicro, {3, 0, 0})
      .Step(kOpHoldBest, kJumpMicro, {2, 0, 0, 0, 2, 0})
      .Step(kOpGate, kJumpMicro, {3, 0, 0})
      .Step(kOpHoldBest, kJumpMicro, {3, 0, 0, 0, 1, 0})
      .Step(kOpAdvance, Jump(kJumpBeforeDeadline))
      .Step(kOpCharge, kJumpNone, {3, 0, 3, 0})
      .Step(kOpPay, Jump(kJumpToDeadline), {3, 0, 0, 0, 0})       // exactly at expiry
      .Step(kOpReleaseSeat, kJumpMicro, {2, 0, 0, 0, 0})
      .Step(kOpCancel, kJumpMicro, {2, 0, 0})
      .Step(kOpRefund, kJumpSeconds, {1, 0, 0})
      .Step(kOpQuery, kJumpMicro, {1, 0, 2})
      .Step(kOpLeave, Jump(kJumpAfterDeadline), {3, 0, 0})
      .Step(kOpAdvance, Jump(kJumpLong, 3));
  return s;
}

void Sequences(const fs::path& dir) {
  // header: flags, capacity, hold TTL, session TTL, abandon/poll, section A, section B,
  // users, opening, rate, seats per reservation, seats per user (high bit: a queue length
  // limit), idempotency TTL (high bit: a user limit), event retention, seed (2 bytes);
  // see Sequence::Setup in command_sequence_fuzzer.cc.
  Write(dir, "drop", Drop({0x00, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3}).bytes());
  Write(dir, "drop-two-concerts", Drop({0x01, 1, 3, 7, 7, 14, 0, 3, 0, 0, 3}).bytes());
  Write(dir, "drop-pre-queue", Drop({0x02, 1, 7, 15, 7, 14, 14, 2, 4, 0, 3, 0, 0, 0, 7}).bytes());
  Write(dir, "drop-rate-limited", Drop({0x04, 2, 7, 3, 3, 5, 1, 3, 0, 1, 1}).bytes());
  Write(dir, "drop-release-on-failure", Drop({0x08, 1, 1, 15, 7, 14, 14, 2, 0, 0, 3}).bytes());
  Write(dir, "drop-seat-limit", Drop({0x10, 0, 7, 15, 7, 14, 14, 2, 0, 0, 3, 1}).bytes());
  Write(dir, "drop-short-idempotency", Drop({0x20, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3, 0, 0}).bytes());
  Write(dir, "drop-small-event-log", Drop({0x40, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3, 0, 0, 2}).bytes());
  Write(dir, "drop-small-balances", Drop({0x80, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3}).bytes());
  Write(dir, "drop-short-queue", Drop({0x00, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3, 0x90, 0x80}).bytes());
  Write(dir, "drop-everything", Drop({0xff, 2, 2, 2, 0x12, 0x21, 0x13, 3, 2, 5, 2, 2, 1, 3, 9, 9}).bytes());

  // Batches after two joins: one of every op that has a batch form, then ops that have
  // none (CREATE_CONCERT, kOpCount) and an invalid time.
  const auto op_byte = [](Op o) { return static_cast<uint8_t>(o); };
  Script batch({0x01, 1, 7, 15, 7, 14, 14, 2, 0, 0, 3});
  batch.Step(kOpJoin, kJumpNone, {1, 0})
      .Step(kOpJoin, kJumpMicro, {2, 0})
      .Step(kOpBatch, kJumpMicro, {7})
      .Raw({op_byte(Op::kJoin), 1, 1, 0})
      .Raw({op_byte(Op::kCharge), 1, 1, 0, 0, 0, 0, 164})  // 300,000 won
      .Raw({op_byte(Op::kHold), 1, 1, 0, 0, 0, 2, 0})       // explicit seats 1 and 2
      .Raw({op_byte(Op::kPay), 1, 1, 0, 0, 0, 0})           // reservation 1
      .Raw({op_byte(Op::kHold), 1, 2, 0, 0, 0, 0x80, 1})    // best-available, 2 seats, grade 1
      .Raw({op_byte(Op::kStatus), 1, 2, 0, 0})
      .Raw({op_byte(Op::kGate), 1, 2, 0, 0})
      .Raw({op_byte(Op::kReleaseSeat), 1, 2, 0, 0, 0, 0, 0})
      .Step(kOpBatch, kJumpMicro, {3})
      .Raw({op_byte(Op::kReleaseSeat), 1, 2, 0, 0, 0, 0, 0})
      .Raw({op_byte(Op::kRefund), 1, 1, 0, 0})
      .Raw({op_byte(Op::kCancel), 1, 2, 0, 0})
      .Raw({op_byte(Op::kLeave), 1, 2, 0, 0})
      .Step(kOpBatch, kJumpMicro, {3})
      .Raw({op_byte(Op::kCreateUser), 1})
      .Raw({op_byte(Op::kCreateConcert), 1, 1})
      .Raw({static_cast<uint8_t>(kOpCount), 1, 1})
      .Raw({op_byte(Op::kAdvance), 0xff})
      .Step(kOpAdvance, Jump(kJumpToDeadline))
      .Step(kOpCreateConcert, kJumpMicro, {0, 0, 7})
      .Step(kOpCreateConcert, kJumpMicro, {0, 0, 5, 2})
      .Step(kOpCreateUser, kJumpMicro)
      .Step(kOpQuery, Jump(kJumpBack), {1, 0, 8, 3, 5});
  Write(dir, "batches", batch.bytes());

  // Every operation once, then each query kind.
  Script all({0x03, 1, 3, 5, 0x13, 9, 6, 3, 1, 0, 2});
  for (int op = 0; op < kSequenceOpCount; ++op) {
    all.Step(static_cast<SequenceOp>(op), Jump(static_cast<TimeJump>(op % kTimeJumpCount)),
             {static_cast<uint8_t>(1 + op % 3), static_cast<uint8_t>(op % 2), 0, 0, 1, 0});
    if (op == kOpBatch) all.Raw({static_cast<uint8_t>(Op::kJoin), 1, 1, 0});
  }
  for (uint8_t q = 0; q < 9; ++q) all.Step(kOpQuery, kJumpMicro, {1, 0, q, 0, 0});
  Write(dir, "every-op", all.bytes());

  std::mt19937_64 rng(20231114);
  for (int i = 0; i < 12; ++i) {
    std::string junk(static_cast<size_t>(64 << (i % 5)), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    Write(dir, "random-" + std::to_string(i), junk);
  }
}

// --- snapshots ------------------------------------------------------------------------

void Snapshots(const fs::path& dir) {
  {
    Engine empty;
    Write(dir, "empty", SaveSnapshot(empty));
  }
  Engine e;
  BuildPrelude(e);
  Write(dir, "prelude", SaveSnapshot(e));
  const TimeUs t = Prelude::kEnd + kMicrosPerSecond;
  (void)e.Pay(1, 1, 1, "p", t);
  (void)e.Refund(2, 2, t);
  (void)e.Charge(3, 10'000, "c", t);
  (void)e.Hold(HoldRequest{3, 3, 1, {}, 2, "R", "h"}, t);
  Write(dir, "paid-and-refunded", SaveSnapshot(e));
  e.Advance(Prelude::kOpens2 + kMicrosPerSecond);
  (void)e.JoinQueue(2, 2, Prelude::kOpens2 + kMicrosPerSecond);
  Write(dir, "queue-opened", SaveSnapshot(e));
  e.Advance(Prelude::kOpens2 + 86'400 * kMicrosPerSecond);
  Write(dir, "a-day-later", SaveSnapshot(e));

  EngineConfig small;
  small.limits.event_retention_max = 0;
  small.limits.idempotency_ttl_us = kMicrosPerSecond;
  small.seed = 7;
  Engine s(small);
  BuildPrelude(s);
  Write(dir, "small-limits", SaveSnapshot(s));

  // A random workload over the prelude, saved every 60 steps.
  Engine r(EngineConfig{Limits{}, 3});
  BuildPrelude(r);
  std::mt19937_64 rng(3);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  TimeUs now = Prelude::kEnd;
  for (int i = 1; i <= 300; ++i) {
    now += pick(0, 3) * kMicrosPerSecond / 2;
    const UserId user = pick(1, 5);
    const TokenId token = pick(1, 8);
    const ReservationId res = pick(1, 8);
    switch (pick(0, 7)) {
      case 0: (void)r.JoinQueue(user, pick(1, 2), now); break;
      case 1: (void)r.QueueStatus(user, token, now); break;
      case 2: (void)r.Hold(HoldRequest{user, token, pick(1, 2), {}, pick(1, 2), "", ""}, now); break;
      case 3: (void)r.Charge(user, pick(1, 3) * 50'000, "", now); break;
      case 4: (void)r.Pay(user, token, res, "", now); break;
      case 5: (void)r.Refund(user, res, now); break;
      case 6: (void)r.CreateUser(now); break;
      default: (void)r.Cancel(user, res, now); break;
    }
    if (i % 60 == 0) Write(dir, "random-" + std::to_string(i), SaveSnapshot(r));
  }
}

}  // namespace
}  // namespace boxoffice_fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir, e.g. fuzz/corpus>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  const boxoffice_fuzz::Seeds records = boxoffice_fuzz::JournalSeeds();
  boxoffice_fuzz::JournalRecords(root / "journal_record_fuzzer", records);
  boxoffice_fuzz::Results(root / "result_fuzzer", records);
  boxoffice_fuzz::Sequences(root / "command_sequence_fuzzer");
  boxoffice_fuzz::Snapshots(root / "snapshot_fuzzer");
  return 0;
}
