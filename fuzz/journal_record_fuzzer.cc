// journal_record_fuzzer: arbitrary bytes as one record of the durable journal.
//
// Recovery decodes journal records (DecodeCommand, command.h) and applies them with
// Engine::Apply, so a damaged or hostile record must be refused or applied safely,
// never crash the engine or break its state. Records of type 13 (batch commands in the
// old batch numbering, which older journals hold) are decoded and applied too. For
// every input this target checks:
//   1. DecodeCommand does not crash; a record it refuses is DATA_LOSS.
//   2. A record it accepts round-trips: decode(encode(c)) equals c field by field, and
//      a record has exactly one encoding: encode(decode(bytes)) == bytes (the decoder
//      accepts only the shortest varints, never padded or overflowing ones).
//   3. Applying the command to an engine in a known, busy state (BuildPrelude in
//      fuzz_common.h: users, two concerts, ACTIVE, WAITING and pre-queue tokens, pending
//      and confirmed reservations, idempotency keys) keeps CheckInvariants() OK, and
//      so does letting a day pass afterwards (every deadline fires).
//   4. The journal seam: what the engine recorded while applying it (a type-13 record
//      is recorded in today's form), decoded and applied to a second engine in the
//      same state, reaches the same StateHash(), before and after that day; when it is
//      one record of the same op, it also gives the same Result, byte for byte
//      (EncodeResult), refusal message and details included.
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
  const bool same_concert = a.concert == nullptr || b.concert == nullptr
                                ? a.concert == b.concert
                                : SameConcert(*a.concert, *b.concert);
  const bool same_legacy = a.legacy_batch.has_value() && b.legacy_batch.has_value()
                               ? SameBatch(*a.legacy_batch, *b.legacy_batch)
                               : a.legacy_batch.has_value() == b.legacy_batch.has_value();
  return a.op == b.op && a.now == b.now && a.user == b.user && a.token == b.token &&
         a.target == b.target && a.arg == b.arg && a.quantity == b.quantity &&
         a.grade == b.grade && a.key == b.key && a.seats == b.seats && same_concert &&
         same_legacy;
}

// The op a command stands for: a type-13 record's op in the old batch numbering.
Op OpOf(const Command& c) {
  return c.legacy_batch.has_value() ? LegacyBatchOpToOp(c.legacy_batch->op) : c.op;
}

std::string Encoded(const Result& r) {
  std::string bytes;
  EncodeResult(r, &bytes);
  return bytes;
}

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
  const Result result = original.Apply(command);
  original.SetCommandSink(nullptr);
  CheckInvariants(original, "after the fuzzed command");
  Check(result.ok() == result.status().ok(), "a Result's code and status disagree");

  // The same state again, through the journal: decode what was recorded and apply it.
  Engine replayed;
  BuildPrelude(replayed);
  for (const std::string& bytes : sink.records) {
    absl::StatusOr<Command> again = DecodeCommand(bytes);
    if (!again.ok()) Fail("a recorded command does not decode: " + again.status().ToString());
    Check(!again->legacy_batch.has_value(), "the engine recorded a type-13 record");
    const Result replay_result = replayed.Apply(*again);
    if (sink.records.size() == 1 && again->op == OpOf(command)) {
      Check(replay_result.code == result.code, "the replayed command fails differently");
      Check(Encoded(replay_result) == Encoded(result), "the replayed command gives another Result");
    }
  }
  const TimeUs later = ADayAfter(original);
  original.Advance(later);
  replayed.Advance(later);
  CheckInvariants(original, "a day after the fuzzed command");
  Check(original.StateHash() == replayed.StateHash(), "replayed state differs a day later");
  return 0;
}
