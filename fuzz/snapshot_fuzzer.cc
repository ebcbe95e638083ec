// snapshot_fuzzer: arbitrary bytes as a snapshot (LoadSnapshot, snapshot.h).
//
// Recovery starts from the latest snapshot, so LoadSnapshot must turn any bytes into
// either an error (INVALID_ARGUMENT: not a snapshot or an unknown version; DATA_LOSS:
// damaged) or a fully working engine, never a crash. A mutated snapshot almost never
// keeps a valid checksum, so each input is also tried with its length field and
// checksum made to fit, which lets the mutations reach the body decoder. For an engine
// that loads this target checks:
//   - CheckInvariants() is OK and its limits pass ValidateLimits;
//   - it saves to bytes that load to the same StateHash() and save to the same bytes;
//   - it keeps working: joins, holds, charges, payments, refunds, a batch and a day
//     passing, each followed by CheckInvariants(); and recovery agrees: the saved
//     snapshot loaded again plus the journal of those commands (encoded, decoded,
//     applied with Engine::Apply) gives the same StateHash().
//
// Run: build/fuzz/snapshot_fuzzer build/fuzz/corpus-work/snapshot_fuzzer
// Replay one input: build/fuzz/snapshot_fuzzer <file>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boxoffice/batch.h"
#include "boxoffice/command.h"
#include "boxoffice/digest.h"
#include "boxoffice/engine.h"
#include "boxoffice/limits.h"
#include "boxoffice/snapshot.h"
#include "fuzz_common.h"

namespace boxoffice_fuzz {
namespace {

constexpr size_t kMagicBytes = 6;
constexpr size_t kHeaderBytes = kMagicBytes + 2 + 8;  // magic, version, body length
constexpr size_t kChecksumBytes = 8;

void PutFixed64(std::string& out, size_t at, uint64_t v) {
  for (size_t i = 0; i < 8; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// `bytes` with the body length and the checksum recomputed (snapshot.h's format).
std::string WithFittingFrame(absl::string_view bytes) {
  std::string fixed(bytes);
  PutFixed64(fixed, kMagicBytes + 2, fixed.size() - kHeaderBytes - kChecksumBytes);
  Digest d;
  d.Mix(absl::string_view(fixed).substr(0, fixed.size() - kChecksumBytes));
  PutFixed64(fixed, fixed.size() - kChecksumBytes, d.value());
  return fixed;
}

// A few commands of every kind on `e`, checking its invariants after each.
void Exercise(Engine& e) {
  // A restored clock is at most kTimeMaxUs (plus a TTL): a day later is still a time.
  const TimeUs t = std::min(e.clock(), kTimeMaxUs) + kMicrosPerSecond;
  const int64_t users = std::min<int64_t>(e.user_count(), 3);
  const int64_t concerts = std::min<int64_t>(e.concert_count(), 2);
  for (ConcertId c = 1; c <= concerts; ++c) {
    absl::StatusOr<std::vector<ScheduleView>> schedules = e.ListSchedules(c, t);
    CheckInvariants(e, "list schedules");
    const ScheduleId schedule = schedules.ok() && !schedules->empty() ? schedules->front().id : 1;
    for (UserId u = 1; u <= users; ++u) {
      absl::StatusOr<TokenView> token = e.JoinQueue(u, c, t);
      CheckInvariants(e, "join");
      const TokenId id = token.ok() ? token->id : 1;
      (void)e.CheckGate(u, id, c, t);
      absl::StatusOr<Reservation> held = e.Hold(HoldRequest{u, id, schedule, {}, 1, "", ""}, t);
      CheckInvariants(e, "hold");
      (void)e.Charge(u, held.ok() ? held->amount : 1'000, "", t);
      CheckInvariants(e, "charge");
      if (held.ok()) {
        absl::StatusOr<Payment> paid = e.Pay(u, id, held->id, "", t);
        CheckInvariants(e, "pay");
        if (paid.ok()) {
          (void)e.Refund(u, held->id, t);
          CheckInvariants(e, "refund");
        }
      }
      (void)e.LeaveQueue(u, id, t);
      CheckInvariants(e, "leave");
    }
  }
  std::vector<BatchCommand> batch(3);
  batch[0].op = static_cast<uint8_t>(Op::kCreateUser);
  batch[1].op = static_cast<uint8_t>(Op::kJoin);
  batch[1].user = e.user_count() + 1;
  batch[1].target = 1;
  batch[2].op = static_cast<uint8_t>(Op::kHold);  // arg 0: best-available
  batch[2].user = batch[1].user;
  batch[2].token = 1;
  batch[2].target = 1;
  batch[2].quantity = 2;
  for (BatchCommand& c : batch) c.now_us = t + 1;
  std::vector<BatchResult> results(batch.size());
  e.ApplyBatch(batch, results);
  CheckInvariants(e, "batch");
  e.Advance(t + 24 * 3600 * kMicrosPerSecond);
  CheckInvariants(e, "a day later");
}

void TryLoad(absl::string_view bytes) {
  absl::StatusOr<std::unique_ptr<Engine>> loaded = LoadSnapshot(bytes);
  if (!loaded.ok()) {
    const absl::StatusCode code = loaded.status().code();
    Check(code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kInvalidArgument,
          "LoadSnapshot fails with a code snapshot.h does not name: " +
              loaded.status().ToString());
    return;
  }
  Engine& e = **loaded;
  CheckInvariants(e, "a loaded snapshot");
  if (absl::Status s = ValidateLimits(e.limits()); !s.ok()) {
    Fail("a loaded snapshot has limits ValidateLimits refuses: " + s.ToString());
  }

  const std::string saved = SaveSnapshot(e);
  absl::StatusOr<std::unique_ptr<Engine>> again = LoadSnapshot(saved);
  if (!again.ok()) Fail("a re-saved snapshot does not load: " + again.status().ToString());
  Check((*again)->StateHash() == e.StateHash(), "a re-saved snapshot loads another state");
  Check(SaveSnapshot(**again) == saved, "a re-saved snapshot saves to other bytes");

  // Recovery: the snapshot plus the journal of what happened after it.
  EncodingSink sink;
  e.SetCommandSink(&sink);
  Exercise(e);
  e.SetCommandSink(nullptr);
  Engine& recovered = **again;
  for (const std::string& record : sink.records) {
    absl::StatusOr<Command> c = DecodeCommand(record);
    if (!c.ok()) Fail("a recorded command does not decode: " + c.status().ToString());
    (void)recovered.Apply(*c);
  }
  CheckInvariants(recovered, "snapshot + journal");
  Check(recovered.StateHash() == e.StateHash(), "snapshot + journal gives another state");
}

}  // namespace
}  // namespace boxoffice_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace boxoffice_fuzz;  // NOLINT
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  TryLoad(bytes);
  if (size >= kHeaderBytes + kChecksumBytes &&
      bytes.substr(0, kMagicBytes) == absl::string_view(kSnapshotMagic, kMagicBytes)) {
    const std::string fixed = WithFittingFrame(bytes);
    if (fixed != bytes) TryLoad(fixed);
  }
  return 0;
}
