// Command and Result: every state change of the Engine as a value in and a
// value out, and their compact binary encodings.
//
// The engine is a deterministic state machine, so its state is a function of
// the commands it applied, in order, each with the `now` it was given.
// `Engine::Apply(const Command&) -> Result` is the only way state changes: the
// typed single calls, `ApplyBatch`, journal recovery and a replica reading a
// replicated log all build a `Command` and apply it there. An Engine with a
// CommandSink reports every command (under its lock, in apply order) before
// applying it, which makes the journal. Queries that move the clock are
// reported as kAdvance, because a later command's effective time is
// max(now, clock).
//
// One operation enum, `Op` (BOXOFFICE_OPS below), numbers the journal record
// types, the batch records (`BatchCommand::op`, batch.h) and the Python
// `boxoffice.batch.Op` (checked against `_core.OPS` at import).
//
// Encoding (both values): LEB128 varints (zig-zag for signed values) and
// length-prefixed strings, in a fixed order per kind. A command is one type
// byte (its Op), `now`, then the fields of its op; a result is its error code,
// then either the refusal (message and details) or the payload, tagged by
// kind. Decoding checks every length against the bytes left and fails with
// DATA_LOSS, never crashes; it accepts only the shortest varint form and
// in-range enum values, so a value has exactly one encoding:
// Encode(Decode(bytes)) == bytes (fuzz/journal_record_fuzzer,
// fuzz/result_fuzzer).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "boxoffice/batch.h"
#include "boxoffice/errors.h"
#include "boxoffice/reservation.h"
#include "boxoffice/types.h"
#include "boxoffice/views.h"

namespace boxoffice {

// X(enumerator, value, name). The values are the journal's record types: never
// renumber one (stores written before must replay). What each op reads and
// returns is in the comment of its Engine method (engine.h).
#define BOXOFFICE_OPS(X)                   \
  X(kAdvance, 0, "ADVANCE")                \
  X(kCreateUser, 1, "CREATE_USER")         \
  X(kCreateConcert, 2, "CREATE_CONCERT")   \
  X(kJoin, 3, "JOIN")                      \
  X(kStatus, 4, "STATUS")                  \
  X(kLeave, 5, "LEAVE")                    \
  X(kGate, 6, "GATE")                      \
  X(kHold, 7, "HOLD")                      \
  X(kReleaseSeat, 8, "RELEASE_SEAT")       \
  X(kCancel, 9, "CANCEL")                  \
  X(kCharge, 10, "CHARGE")                 \
  X(kPay, 11, "PAY")                       \
  X(kRefund, 12, "REFUND")

enum class Op : uint8_t {
#define BOXOFFICE_X(e, v, name) e = v,
  BOXOFFICE_OPS(BOXOFFICE_X)
#undef BOXOFFICE_X
      kCount
};
inline constexpr int kOpCount = static_cast<int>(Op::kCount);

// The op's stable name ("HOLD"); "" for a value out of range.
absl::string_view OpName(Op op);

// Journal record type 13: one batch command as journals before the one command
// path recorded it, with the batch numbering of that time. Decoded only.
inline constexpr uint8_t kLegacyBatchRecord = 13;

struct Command {
  Op op = Op::kAdvance;
  TimeUs now = 0;       // as given by the caller (the engine clamps it to its clock)
  int64_t user = 0;
  int64_t token = 0;
  int64_t target = 0;   // concert (JOIN, GATE), schedule (HOLD) or reservation
  int64_t arg = 0;      // seat (RELEASE_SEAT) or amount in won (CHARGE)
  int64_t quantity = 0; // HOLD best-available: how many adjacent seats
  std::string grade;    // HOLD best-available: which grade ("" = any)
  std::string key;      // idempotency key ("" = none)
  std::vector<SeatId> seats;                  // HOLD: explicit seats
  std::shared_ptr<const ConcertSpec> concert;  // CREATE_CONCERT
  // Set only by decoding a kLegacyBatchRecord (then `op` is unused): the batch
  // command exactly as recorded, in the old batch numbering.
  std::optional<BatchCommand> legacy_batch;

  friend bool operator==(const Command& a, const Command& b);
};

// What applying a command gave: OK and the op's value, or a refusal.
struct Result {
  // The kind of `value` (the wire tag); one per op family.
  enum class Kind : uint8_t {
    kNone = 0,         // ADVANCE, and every refusal
    kUser = 1,         // CREATE_USER: the new user's id
    kToken = 2,        // JOIN, STATUS, LEAVE, GATE
    kReservation = 3,  // HOLD, RELEASE_SEAT, CANCEL, REFUND
    kCharge = 4,       // CHARGE
    kPayment = 5,      // PAY
    kConcert = 6,      // CREATE_CONCERT
    kCount
  };
  ErrorCode code = ErrorCode::kOk;
  // The refusal's message and details (errors.h); empty when `code` is kOk. A
  // refusal is a value here, not an absl::Status: it is a normal answer, and the
  // batch path reads only its code.
  std::string message;
  ErrorDetails details;
  std::variant<std::monostate, UserId, TokenView, Reservation, ChargeResult, Payment,
               ConcertView>
      value;

  bool ok() const { return code == ErrorCode::kOk; }
  Kind kind() const { return static_cast<Kind>(value.index()); }
  // OK, or the refusal as MakeError(code, message, details): for the typed calls.
  absl::Status status() const;
  static Result Refused(const absl::Status& status);
  static Result Refused(Refusal refusal);
};

// Appends the encoding of `c` to `out`.
void EncodeCommand(const Command& c, std::string* out);
// Decodes one whole record; DATA_LOSS if it is malformed or has trailing bytes.
absl::StatusOr<Command> DecodeCommand(absl::string_view record);

// Appends the encoding of `r` to `out`.
void EncodeResult(const Result& r, std::string* out);
// Decodes one whole result; DATA_LOSS if it is malformed or has trailing bytes.
absl::StatusOr<Result> DecodeResult(absl::string_view bytes);

// Receives every command an Engine applies, under the engine's lock, in order.
class CommandSink {
 public:
  virtual ~CommandSink() = default;
  // Returns the journal sequence number given to the command.
  virtual Seq Record(const Command& command) = 0;
  // OK while records are written. Once the journal writer has failed (disk full, I/O
  // error) nothing recorded can become durable, so the engine refuses commands with this
  // status instead of changing state that a restart would not have (fail-stop).
  virtual absl::Status Accepting() { return absl::OkStatus(); }
};

}  // namespace boxoffice
