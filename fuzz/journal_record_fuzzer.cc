// journal_record_fuzzer: arbitrary bytes as one record of the durable journal.
//
// Recovery decodes journal records (DecodeCommand, command.h) and applies them with
// Engine::Replay, so a damaged or hostile record must be refused or applied safely,
// never crash the engine or break its state. For every input this target checks:
//   1. DecodeCommand does not crash; a record it refuses is DATA_LOSS.
//   2. A record it accepts round-trips: decode(encode(c)) equals c field by field, and
//      a record has exactly one encoding: encode(decode(bytes)) == bytes (the decoder
//      accepts only the shortest varints, never padded or overflowing ones).
//   3. Replaying the command on an engine in a known, busy state (BuildPrelude in
//      fuzz_common.h: users, two concerts, ACTIVE, WAITING and pre-queue tokens, pending
//      and confirmed reservations, idempotency keys) keeps CheckInvariants() OK, and
//      so does letting a day pass afterwards (every deadline fires).
//   4. The journal seam: what the engine recorded while applying it, decoded and
//      replayed on a second engine in the same state, gives the same status and the
//      same StateHash(), before and after that day.
//
// Bugs it found are kept as inputs in fuzz/regressions/journal_record_fuzzer/ (see the
// README there), which fuzz/run.sh replays before fuzzing.
//
// Run: build/fuzz/journal_record_fuzzer build/fuzz/corpus-work/journal_record_fuzzer
// Replay one input: build/fuzz/journal_record_fuzzer <file>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "fuzz_common.h"

namespace boxoffice_fuzz {
namespace {

bool SameSale(const SaleSettings& a, const SaleSettings& b) {
  return a.opens_at == b.opens_at && a.queue_capacity == b.queue_capacity &&
         a.admission_per_minute == b.admission_per_minute &&
         a.session_ttl_us == b.session_ttl_us && a.hold_ttl_us == b.hold_ttl_us &&
         a.max_seats_per_reservation == b.max_seats_per_reservation &&
         a.max_seats_per_user == b.max_seats_per_user &&
         a.release_on_payment_failure == b.release_on_payment_failure &&
         a.abandon_timeout_us == b.abandon_timeout_us &&
         a.poll_interval_us == b.poll_interval_us;
}

bool SameConcert(const ConcertSpec& a, const ConcertSpec& b) {
  if (a.title != b.title || a.artist != b.artist || a.venue != b.venue ||
      a.schedules.size() != b.schedules.size() || !SameSale(a.sale, b.sale)) {
    return false;
  }
  for (size_t i = 0; i < a.schedules.size(); ++i) {
    const ScheduleSpec& x = a.schedules[i];
    const ScheduleSpec& y = b.schedules[i];
    if (x.starts_at != y.starts_at || x.sections.size() != y.sections.size()) return false;
    for (size_t j = 0; j < x.sections.size(); ++j) {
      const SectionSpec& p = x.sections[j];
      const SectionSpec& q = y.sections[j];
      if (p.name != q.name || p.rows != q.rows || p.seats_per_row != q.seats_per_row ||
          p.grade != q.grade || p.price != q.price) {
        return false;
      }
    }
  }
  return true;
}

bool SameBatch(const BatchCommand& a, const BatchCommand& b) {
  return a.op == b.op && a.grade == b.grade && a.quantity == b.quantity &&
         a.reserved == b.reserved && a.now_us == b.now_us && a.user == b.user &&
         a.token == b.token && a.target == b.target && a.arg == b.arg;
}

// Field by field, not through Command's operator== (which compares encodings).
bool SameCommand(const Command& a, const Command& b) {
  return a.type == b.type && a.now == b.now && a.user == b.user && a.token == b.token &&
         a.target == b.target && a.arg == b.arg && a.quantity == b.quantity &&
         a.grade == b.grade && a.key == b.key && a.seats == b.seats &&
         SameConcert(a.concert, b.concert) && SameBatch(a.batch, b.batch);
}

ErrorCode Code(const absl::Status& s) { return GetErrorCode(s); }

void CheckRoundTrip(const Command& c) {
  std::string once;
  EncodeCommand(c, &once);
  absl::StatusOr<Command> back = DecodeCommand(once);
  if (!back.ok()) Fail(absl::StrCat("an encoded record does not decode: ", back.status().ToString()));
  Check(SameCommand(*back, c), "decode(encode(c)) != c");
  Check(*back == c, "Command::operator== disagrees with the fields");
  std::string twice;
  EncodeCommand(*back, &twice);
  Check(twice == once, "encode(decode(encode(c))) != encode(c)");
}

// The engine's clock after the fuzzed command may be far in the future (a record's
// time is any int64); a day later, when that still is a valid time.
TimeUs ADayAfter(Engine& engine) {
  const TimeUs clock = engine.clock();
  constexpr TimeUs kDayUs = 24 * 3600 * kMicrosPerSecond;
  return clock <= kTimeMaxUs - kDayUs ? clock + kDayUs : clock;
}

}  // namespace
}  // namespace boxoffice_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace boxoffice_fuzz;  // NOLINT
  const absl::string_view record(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Command> decoded = DecodeCommand(record);
  if (!decoded.ok()) {
    Check(decoded.status().code() == absl::StatusCode::kDataLoss,
          "a refused record is not DATA_LOSS");
    return 0;
  }
  const Command& command = *decoded;
  CheckRoundTrip(command);
  std::string canonical;
  EncodeCommand(command, &canonical);
  Check(canonical == record, "an accepted record is not the encoding of what it decodes to");

  Engine original;
  BuildPrelude(original);
  EncodingSink sink;
  original.SetCommandSink(&sink);
  const absl::Status status = original.Replay(command);
  original.SetCommandSink(nullptr);
  CheckInvariants(original, "after the fuzzed command");

  // The same state again, through the journal: decode what was recorded and replay it.
  Engine replayed;
  BuildPrelude(replayed);
  for (const std::string& bytes : sink.records) {
    absl::StatusOr<Command> again = DecodeCommand(bytes);
    if (!again.ok()) Fail("a recorded command does not decode: " + again.status().ToString());
    const absl::Status replay_status = replayed.Replay(*again);
    if (sink.records.size() == 1 && again->type == command.type) {
      Check(Code(replay_status) == Code(status), "the replayed command fails differently");
    }
  }
  CheckInvariants(replayed, "after replaying the recorded commands");
  Check(original.StateHash() == replayed.StateHash(), "replayed state differs");

  const TimeUs later = ADayAfter(original);
  original.Advance(later);
  replayed.Advance(later);
  CheckInvariants(original, "a day after the fuzzed command");
  Check(original.StateHash() == replayed.StateHash(), "replayed state differs a day later");
  return 0;
}
