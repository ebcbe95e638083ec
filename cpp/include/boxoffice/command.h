// Command: every state-changing call of the Engine as a value, and its compact
// binary encoding — the records of the durable journal.
//
// The engine is a deterministic state machine, so its state is a function of
// the commands it applied, in order, each with the `now` it was given. An
// Engine with a CommandSink reports every such command (under its lock, in
// apply order) before applying it; `Engine::Replay` applies a decoded command
// through the very same code, which is how recovery rebuilds the state from a
// snapshot and the journal tail. Queries that move the clock are reported as
// kAdvance, because a later command's effective time is max(now, clock).
//
// Encoding: one type byte, then LEB128 varints (zig-zag for signed values) and
// length-prefixed strings, in a fixed order per type. Decoding checks every
// length against the bytes left and fails with DATA_LOSS, never crashes; it
// accepts only the shortest varint form, so a record has exactly one encoding
// (EncodeCommand(DecodeCommand(bytes)) == bytes; fuzz/journal_record_fuzzer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "boxoffice/batch.h"
#include "boxoffice/engine.h"
#include "boxoffice/types.h"

namespace boxoffice {

enum class CommandType : uint8_t {
  kAdvance = 0,
  kCreateUser = 1,
  kCreateConcert = 2,
  kJoin = 3,          // user, target = concert
  kStatus = 4,        // user, token
  kLeave = 5,         // user, token
  kGate = 6,          // user, token, target = concert
  kHold = 7,          // user, token, target = schedule, seats | quantity + grade, key
  kReleaseSeat = 8,   // user, target = reservation, arg = seat
  kCancel = 9,        // user, target = reservation
  kCharge = 10,       // user, arg = amount, key
  kPay = 11,          // user, token, target = reservation, key
  kRefund = 12,       // user, target = reservation
  kBatchCommand = 13, // one record of an ApplyBatch call
  kCount
};

struct Command {
  CommandType type = CommandType::kAdvance;
  TimeUs now = 0;  // as given by the caller (the engine clamps it to its clock)
  int64_t user = 0;
  int64_t token = 0;
  int64_t target = 0;
  int64_t arg = 0;
  int64_t quantity = 0;
  std::string grade;
  std::string key;             // idempotency key
  std::vector<SeatId> seats;
  ConcertSpec concert;         // kCreateConcert
  BatchCommand batch;          // kBatchCommand

  friend bool operator==(const Command& a, const Command& b);
};

// Appends the encoding of `c` to `out`.
void EncodeCommand(const Command& c, std::string* out);
// Decodes one whole record; DATA_LOSS if it is malformed or has trailing bytes.
absl::StatusOr<Command> DecodeCommand(absl::string_view record);

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
