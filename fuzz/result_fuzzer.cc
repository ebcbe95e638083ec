// result_fuzzer: arbitrary bytes as an encoded Result, and as commands whose real
// Results go through that encoding.
//
// A Result (command.h) is what Engine::Apply gave: OK and the op's value, or a
// refusal with its code, message and details. Its wire form (EncodeResult,
// DecodeResult) carries it out of the process that applied the command, so the
// decoder must refuse damaged bytes cleanly, and a Result must have exactly one
// encoding. For every input this target checks:
//   1. DecodeResult on the whole input does not crash; bytes it refuses are DATA_LOSS.
//   2. Bytes it accepts are the encoding of what they decode to (Encode(Decode(bytes))
//      == bytes: shortest varints, enum values in range, no trailing bytes), decoding
//      them again gives the same Result field by field, and the Result is well formed:
//      a refusal has no value and its status() carries its code, message and details
//      with the absl code its ErrorCode names (errors.h), an OK Result has no message
//      or details and only enum values in range.
//   3. The same bytes, read as up to kCommandsMax commands (kCommandBytes each, layout
//      at ReadCommand), applied with Engine::Apply to the starting state of
//      journal_record_fuzzer (BuildPrelude in fuzz_common.h): each Result is well
//      formed, an OK one holds the kind of value command.h names for its op, and its
//      encoding decodes to a Result equal field by field (a refusal's message and
//      details included) that encodes to the same bytes. CheckInvariants() holds
//      at the end.
//
// Run: build/fuzz/result_fuzzer build/fuzz/corpus-work/result_fuzzer
// Replay one input: build/fuzz/result_fuzzer <file>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "fuzz_common.h"

namespace boxoffice_fuzz {
namespace {

constexpr size_t kCommandBytes = 8;
constexpr size_t kCommandsMax = 16;

// --- equality, field by field ---------------------------------------------------------

bool Same(UserId a, UserId b) { return a == b; }

bool Same(const TokenView& a, const TokenView& b) {
  return a.id == b.id && a.user_id == b.user_id && a.concert_id == b.concert_id &&
         a.status == b.status && a.end == b.end && a.position == b.position &&
         a.join_seq == b.join_seq && a.eta_us == b.eta_us && a.poll_after_us == b.poll_after_us &&
         a.joined_at == b.joined_at && a.activated_at == b.activated_at &&
         a.expires_at == b.expires_at && a.ended_at == b.ended_at;
}

bool Same(const Reservation& a, const Reservation& b) {
  return a.id == b.id && a.user_id == b.user_id && a.concert_id == b.concert_id &&
         a.schedule_id == b.schedule_id && a.token_id == b.token_id && a.status == b.status &&
         a.seat_ids == b.seat_ids && a.amount == b.amount && a.created_at == b.created_at &&
         a.expires_at == b.expires_at && a.ended_at == b.ended_at &&
         a.payment_id == b.payment_id;
}

bool Same(const ChargeResult& a, const ChargeResult& b) {
  return a.entry_id == b.entry_id && a.user_id == b.user_id && a.amount == b.amount &&
         a.balance == b.balance && a.at == b.at;
}

bool Same(const Payment& a, const Payment& b) {
  return a.id == b.id && a.reservation_id == b.reservation_id && a.user_id == b.user_id &&
         a.amount == b.amount && a.status == b.status && a.paid_at == b.paid_at &&
         a.balance_after == b.balance_after;
}

bool Same(const ScheduleView& a, const ScheduleView& b) {
  return a.id == b.id && a.concert_id == b.concert_id && a.starts_at == b.starts_at &&
         a.seats_total == b.seats_total && a.seats_available == b.seats_available &&
         a.seats_held == b.seats_held && a.seats_sold == b.seats_sold;
}

bool Same(const ConcertView& a, const ConcertView& b) {
  if (a.id != b.id || a.title != b.title || a.artist != b.artist || a.venue != b.venue ||
      !SameSale(a.sale, b.sale) || a.grades != b.grades ||
      a.schedules.size() != b.schedules.size() || a.created_at != b.created_at) {
    return false;
  }
  for (size_t i = 0; i < a.schedules.size(); ++i) {
    if (!Same(a.schedules[i], b.schedules[i])) return false;
  }
  return true;
}

bool Same(std::monostate, std::monostate) { return true; }

bool Same(const ErrorDetails& a, const ErrorDetails& b) {
  return a.position == b.position && a.eta_us == b.eta_us && a.seat_id == b.seat_id &&
         a.retry_after_us == b.retry_after_us;
}

bool Same(const Result& a, const Result& b) {
  if (a.code != b.code || a.message != b.message || !Same(a.details, b.details) ||
      a.value.index() != b.value.index()) {
    return false;
  }
  return std::visit(
      [&b](const auto& x) { return Same(x, std::get<std::decay_t<decltype(x)>>(b.value)); },
      a.value);
}

// --- the checks -------------------------------------------------------------------------

std::string Encoded(const Result& r) {
  std::string bytes;
  EncodeResult(r, &bytes);
  return bytes;
}

// Every enum a value holds is one its type names (the decoder's promise).
bool EnumsInRange(const Result& r) {
  if (const auto* t = std::get_if<TokenView>(&r.value)) {
    return t->status <= TokenStatus::kExpired && t->end <= TokenEnd::kCompleted;
  }
  if (const auto* v = std::get_if<Reservation>(&r.value)) {
    return v->status <= ReservationStatus::kRefunded;
  }
  if (const auto* p = std::get_if<Payment>(&r.value)) return p->status <= PaymentStatus::kRefunded;
  return true;
}

// What every Result must be, decoded or made by the engine.
void CheckWellFormed(const Result& r, absl::string_view what) {
  if (r.ok()) {
    Check(r.message.empty() && Same(r.details, ErrorDetails{}),
          absl::StrCat(what, ": an OK Result has a refusal message or details"));
    Check(EnumsInRange(r), absl::StrCat(what, ": a value holds an enum out of range"));
    return;
  }
  Check(r.kind() == Result::Kind::kNone, absl::StrCat(what, ": a refusal holds a value"));
  const absl::Status status = r.status();
  Check(GetErrorCode(status) == r.code && Same(GetErrorDetails(status), r.details) &&
            status.message() == r.message,
        absl::StrCat(what, ": a refusal's status carries another code, message or details"));
  Check(status.code() == GetErrorInfo(r.code).status_code,
        absl::StrCat(what, ": a refusal's status has another absl code than its ErrorCode"));
}

// The kind of value an OK Result of `op` holds (command.h, Result::Kind).
Result::Kind KindOf(Op op) {
  switch (op) {
    case Op::kAdvance: return Result::Kind::kNone;
    case Op::kCreateUser: return Result::Kind::kUser;
    case Op::kCreateConcert: return Result::Kind::kConcert;
    case Op::kJoin:
    case Op::kStatus:
    case Op::kLeave:
    case Op::kGate: return Result::Kind::kToken;
    case Op::kHold:
    case Op::kReleaseSeat:
    case Op::kCancel:
    case Op::kRefund: return Result::Kind::kReservation;
    case Op::kCharge: return Result::Kind::kCharge;
    case Op::kPay: return Result::Kind::kPayment;
    case Op::kCount: break;
  }
  return Result::Kind::kCount;
}

// 1 and 2: the input as an encoded Result.
void CheckDecoding(absl::string_view bytes) {
  absl::StatusOr<Result> decoded = DecodeResult(bytes);
  if (!decoded.ok()) {
    Check(decoded.status().code() == absl::StatusCode::kDataLoss,
          "refused bytes are not DATA_LOSS: " + decoded.status().ToString());
    return;
  }
  CheckWellFormed(*decoded, "a decoded Result");
  const std::string canonical = Encoded(*decoded);
  Check(canonical == bytes, "accepted bytes are not the encoding of what they decode to");
  absl::StatusOr<Result> again = DecodeResult(canonical);
  if (!again.ok()) Fail("a re-encoded Result does not decode: " + again.status().ToString());
  Check(Same(*again, *decoded), "decode(encode(r)) != r for a decoded r");
}

// 3: an engine's Result through the encoding.
void CheckRoundTrip(const Result& r, Op op) {
  const std::string what =
      absl::StrCat("the Result of ", OpName(op).empty() ? "an unknown op" : OpName(op));
  CheckWellFormed(r, what);
  if (r.ok()) Check(r.kind() == KindOf(op), what + ": a value of another kind than its op's");
  const std::string bytes = Encoded(r);
  absl::StatusOr<Result> back = DecodeResult(bytes);
  if (!back.ok()) Fail(what + ": its encoding does not decode: " + back.status().ToString());
  Check(Same(*back, r), what + ": decode(encode(r)) != r");
  Check(Encoded(*back) == bytes, what + ": encode(decode(encode(r))) != encode(r)");
}

// --- the input as commands --------------------------------------------------------------

// Reads kCommandBytes-byte commands on the prelude's ids; past the end every byte is 0.
class CommandReader {
 public:
  explicit CommandReader(absl::string_view in) : in_(in) {}
  bool done() const { return in_.empty(); }

  // byte 0: the Op (modulo kOpCount + 1; kOpCount is an unknown op)
  // byte 1: the time: low 3 bits pick a move of the callers' clock (see Time)
  // byte 2: user (0 and 5: none), byte 3: token (0, 6, 7: none)
  // byte 4: target by op: concert 1..2, schedule 1..2, reservation 1..3 (others: none)
  // byte 5: seat (RELEASE_SEAT; HOLD's first seat) or amount (CHARGE, see Amount)
  // byte 6: HOLD: below 0x80 explicit seats, 1 + byte % 4 of them from seat byte 5;
  //         0x80 or more best-available, quantity byte % 6, grade (byte >> 3) % 5
  // byte 7: idempotency key (HOLD, CHARGE, PAY); CREATE_CONCERT: which concert
  Command Next() {
    uint8_t b[kCommandBytes] = {};
    for (uint8_t& x : b) x = Byte();
    Command c;
    c.op = static_cast<Op>(b[0] % (kOpCount + 1));
    c.now = Time(b[1]);
    c.user = b[2] % 6;
    c.token = b[3] % 8;
    switch (c.op) {
      case Op::kJoin:
      case Op::kGate: c.target = b[4] % 4; break;
      case Op::kHold: c.target = b[4] % 4; break;
      case Op::kReleaseSeat:
      case Op::kCancel:
      case Op::kPay:
      case Op::kRefund: c.target = b[4] % 5; break;
      default: break;
    }
    if (c.op == Op::kReleaseSeat) c.arg = b[5] % (Prelude::kSeats + 2);
    if (c.op == Op::kCharge) c.arg = Amount(b[5]);
    if (c.op == Op::kHold) {
      if (b[6] < 0x80) {
        for (int k = 0; k <= b[6] % 4; ++k) c.seats.push_back(b[5] % (Prelude::kSeats + 2) + k);
      } else {
        c.quantity = b[6] % 6;
        constexpr const char* kGrades[] = {"", "VIP", "R", "S", "none"};
        c.grade = kGrades[(b[6] >> 3) % 5];
      }
    }
    if (c.op == Op::kHold || c.op == Op::kCharge || c.op == Op::kPay) {
      c.key = b[7] % 4 == 0 ? "" : absl::StrCat("k", b[7] % 3);
    }
    if (c.op == Op::kCreateConcert) {
      ConcertSpec spec = PreludeConcert(1 + b[7] % 2);
      if (b[7] % 4 == 3) spec.schedules.clear();  // refused: INVALID_ARGUMENT
      c.concert = std::make_shared<const ConcertSpec>(std::move(spec));
    }
    return c;
  }

 private:
  uint8_t Byte() {
    if (in_.empty()) return 0;
    const auto b = static_cast<uint8_t>(in_.front());
    in_.remove_prefix(1);
    return b;
  }

  // The command's `now`: the callers' clock after a move, or a stale or invalid time.
  TimeUs Time(uint8_t b) {
    const int64_t n = 1 + (b >> 3);
    switch (b & 7) {
      case 0: break;
      case 1: now_ += 1; break;
      case 2: now_ += n * kMicrosPerSecond / 4; break;
      case 3: now_ = std::max(now_, Prelude::kHoldExpiry - 1 + n % 3); break;  // at expiry ±1 µs
      case 4: now_ += n * 60 * kMicrosPerSecond; break;
      case 5: now_ = std::max(now_, Prelude::kOpens2); break;
      case 6: return now_ - kMicrosPerSecond;  // a stale caller
      default: return b & 8 ? -1 : kTimeMaxUs + 1;  // refused: INVALID_ARGUMENT
    }
    return now_;
  }

  static Won Amount(uint8_t b) {
    constexpr Won kAmounts[] = {-1, 0, 1, 50'000, 100'000, 300'000, 10'000'000, 1'000'000'000};
    return kAmounts[b % 8];
  }

  absl::string_view in_;
  TimeUs now_ = Prelude::kEnd;
};

}  // namespace
}  // namespace boxoffice_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace boxoffice_fuzz;  // NOLINT
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckDecoding(bytes);

  Engine engine;
  BuildPrelude(engine);
  CommandReader reader(bytes);
  for (size_t i = 0; i < kCommandsMax && !reader.done(); ++i) {
    const Command command = reader.Next();
    CheckRoundTrip(engine.Apply(command), command.op);
  }
  CheckInvariants(engine, "after the commands");
  return 0;
}
