// Basic vocabulary of the core: ids, time, money and the status enums.
//
// Time is an integer count of microseconds since the Unix epoch (`TimeUs`);
// every command receives it as an argument and the core never reads a clock.
// Money is integer won (`Won`). Ids are dense positive integers handed out by
// the engine in creation order; 0 means "none".
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace boxoffice {

using TimeUs = int64_t;      // microseconds since 1970-01-01T00:00:00Z
using DurationUs = int64_t;  // microseconds
using Won = int64_t;         // Korean won, integer

inline constexpr DurationUs kMicrosPerSecond = 1'000'000;
// "Not happened / not set" for optional times (valid times are >= 0).
inline constexpr TimeUs kNever = -1;
// "No limit" for optional limits such as admission_per_minute (valid limits are >= 1).
inline constexpr int64_t kNoLimit = -1;

using UserId = int64_t;
using ConcertId = int64_t;
using ScheduleId = int64_t;
using SeatId = int64_t;
using TokenId = int64_t;
using ReservationId = int64_t;
using PaymentId = int64_t;
using EntryId = int64_t;
using AccountId = int64_t;
using Seq = int64_t;

enum class TokenStatus : uint8_t { kWaiting = 0, kActive = 1, kExpired = 2 };
enum class SeatStatus : uint8_t { kAvailable = 0, kHeld = 1, kSold = 2 };
enum class ReservationStatus : uint8_t {
  kPending = 0,
  kConfirmed = 1,
  kExpired = 2,
  kCanceled = 3,
  kRefunded = 4,
};
// Why a queue token stopped being live.
enum class TokenEnd : uint8_t {
  kNone = 0,
  kLeft = 1,            // the user left the queue
  kAbandoned = 2,       // a WAITING token stopped polling for abandon_timeout
  kSessionExpired = 3,  // an ACTIVE token outlived session_ttl
  kCompleted = 4,       // the user paid; the slot goes to the next in line
};

absl::string_view ToString(TokenStatus s);
absl::string_view ToString(SeatStatus s);
absl::string_view ToString(ReservationStatus s);
absl::string_view ToString(TokenEnd e);

}  // namespace boxoffice
