// Error codes of the core and how they travel inside absl::Status.
//
// Each expected failure has a stable string code (SEAT_UNAVAILABLE, ...) that
// is the same in C++, in Python (`boxoffice.errors`) and in HTTP problem
// responses. The absl::StatusCode is chosen by what the caller should do next
// (absl/status/status.h): kNotFound, kFailedPrecondition (don't retry until
// the state changes), kResourceExhausted (a limit was reached),
// kInvalidArgument, kPermissionDenied. The code travels as a Status payload,
// together with optional integer details (a queue position, an ETA, a seat).
// On the engine's hot path a refusal travels as a `Refusal` value instead (code,
// message and details, no absl::Status), converted where a Status is wanted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace boxoffice {

// The one place where a code's status class and HTTP status are written:
// X(enumerator, stable code, absl::StatusCode, HTTP status). Python reads it as
// boxoffice._core.ERROR_CODES (boxoffice.errors takes each class's
// http_status from it) and tests check docs/ against it. A new code needs a
// class in python/boxoffice/errors.py (a test fails until it has one) and a
// row in the codes table of docs/http-api.md.
#define BOXOFFICE_ERROR_CODES(X)                                       \
  X(kOk, "OK", kOk, 200)                                               \
  X(kInvalidArgument, "INVALID_ARGUMENT", kInvalidArgument, 422)       \
  X(kInvalidAmount, "INVALID_AMOUNT", kInvalidArgument, 422)           \
  X(kTooManySeats, "TOO_MANY_SEATS", kInvalidArgument, 422)            \
  X(kIdempotencyKeyReused, "IDEMPOTENCY_KEY_REUSED", kInvalidArgument, \
    422)                                                               \
  X(kLimitExceeded, "LIMIT_EXCEEDED", kResourceExhausted, 422)         \
  X(kUserNotFound, "USER_NOT_FOUND", kNotFound, 404)                   \
  X(kConcertNotFound, "CONCERT_NOT_FOUND", kNotFound, 404)             \
  X(kScheduleNotFound, "SCHEDULE_NOT_FOUND", kNotFound, 404)           \
  X(kSeatNotFound, "SEAT_NOT_FOUND", kNotFound, 404)                   \
  X(kSeatNotInReservation, "SEAT_NOT_IN_RESERVATION", kNotFound, 404)  \
  X(kReservationNotFound, "RESERVATION_NOT_FOUND", kNotFound, 404)     \
  X(kSeatUnavailable, "SEAT_UNAVAILABLE", kFailedPrecondition, 409)    \
  X(kHoldExpired, "HOLD_EXPIRED", kFailedPrecondition, 409)            \
  X(kReservationNotPending, "RESERVATION_NOT_PENDING",                 \
    kFailedPrecondition, 409)                                          \
  X(kReservationNotConfirmed, "RESERVATION_NOT_CONFIRMED",             \
    kFailedPrecondition, 409)                                          \
  X(kInsufficientBalance, "INSUFFICIENT_BALANCE", kFailedPrecondition, \
    409)                                                               \
  X(kBalanceLimitExceeded, "BALANCE_LIMIT_EXCEEDED",                   \
    kResourceExhausted, 409)                                           \
  X(kSeatLimitPerUser, "SEAT_LIMIT_PER_USER", kResourceExhausted, 409) \
  X(kQueueNotActive, "QUEUE_NOT_ACTIVE", kFailedPrecondition, 403)     \
  X(kQueueTokenExpired, "QUEUE_TOKEN_EXPIRED", kFailedPrecondition,    \
    403)                                                               \
  X(kQueueTokenInvalid, "QUEUE_TOKEN_INVALID", kPermissionDenied, 403) \
  X(kQueueFull, "QUEUE_FULL", kResourceExhausted, 429)                 \
  X(kStoreUnavailable, "STORE_UNAVAILABLE", kUnavailable, 503)         \
  X(kStoreLocked, "STORE_LOCKED", kFailedPrecondition, 503)            \
  X(kStoreVersionUnsupported, "STORE_VERSION_UNSUPPORTED",             \
    kFailedPrecondition, 503)                                          \
  X(kStoreClosed, "STORE_CLOSED", kFailedPrecondition, 503)            \
  X(kDataLoss, "DATA_LOSS", kDataLoss, 500)                            \
  X(kInternal, "INTERNAL", kInternal, 500)

enum class ErrorCode : uint16_t {
#define BOXOFFICE_X(e, name, absl_code, http) e,
  BOXOFFICE_ERROR_CODES(BOXOFFICE_X)
#undef BOXOFFICE_X
      kCount
};

struct ErrorInfo {
  ErrorCode code;
  absl::string_view name;       // the stable code, e.g. "SEAT_UNAVAILABLE"
  absl::StatusCode status_code;
  int http_status;
};

// The table of every code, indexed by ErrorCode.
const ErrorInfo& GetErrorInfo(ErrorCode code);
inline constexpr int kErrorCodeCount = static_cast<int>(ErrorCode::kCount);

// Integer details an error may carry (absent when not set).
struct ErrorDetails {
  std::optional<int64_t> position;    // QUEUE_NOT_ACTIVE: tokens waiting ahead
  std::optional<int64_t> eta_us;      // QUEUE_NOT_ACTIVE: estimated wait
  std::optional<int64_t> seat_id;     // the seat a seat error is about
  std::optional<int64_t> retry_after_us;  // QUEUE_FULL, QUEUE_NOT_ACTIVE
};

// Builds a status with the code's absl::StatusCode, the message and payloads.
absl::Status MakeError(ErrorCode code, absl::string_view message,
                       const ErrorDetails& details = {});
// The ErrorCode carried by `status`: kOk for OK, kInternal for a status that
// was not built by MakeError.
ErrorCode GetErrorCode(const absl::Status& status);
// Whether `status` carries an ErrorCode (OK, or built by MakeError): a layer
// that gives codes to the plain statuses below it leaves these as they are.
bool HasErrorCode(const absl::Status& status);
ErrorDetails GetErrorDetails(const absl::Status& status);
// GetErrorCode and GetErrorDetails at once (the payload read once).
ErrorCode GetErrorCodeAndDetails(const absl::Status& status, ErrorDetails* details);

// A refusal as a plain value: what MakeError puts in a Status, without the Status.
// A refusal is a normal answer on the hot path (a WAITING user at the gate is the
// most common one of a drop), and a Status with a message and a payload costs three
// heap blocks and a payload decode per reader; a Refusal costs its message only.
struct Refusal {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  ErrorDetails details;

  Refusal() = default;
  Refusal(ErrorCode c, std::string m, const ErrorDetails& d = {})
      : code(c), message(std::move(m)), details(d) {}

  // MakeError(code, message, details).
  absl::Status ToStatus() const;
  // The code, message and details `status` carries (GetErrorCode: kInternal
  // with its message for a status not built by MakeError, kOk for OK).
  static Refusal FromStatus(const absl::Status& status);
};

}  // namespace boxoffice
