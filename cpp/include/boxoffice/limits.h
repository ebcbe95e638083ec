// Named limits of the engine, with units last (TigerBeetle style).
//
// Every collection the engine grows and every amount it accepts has a bound
// here; exceeding one is a clear error (LIMIT_EXCEEDED, TOO_MANY_SEATS,
// INVALID_AMOUNT, QUEUE_FULL, ...), never a crash or a silent truncation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "boxoffice/types.h"

namespace boxoffice {

// Fixed bounds of the rules (not configurable), shared by the engine, the
// admission queue and the snapshot decoder.
inline constexpr int64_t kAdmissionPerMinuteMax = 60 * kMicrosPerSecond;  // one per µs
inline constexpr TimeUs kTimeMaxUs = 100'000'000'000LL * kMicrosPerSecond;  // year ~5138
inline constexpr size_t kRecentAdmissionsMax = 1024;  // admissions kept for the ETA
// The most users, concerts and queue tokens one engine creates, and so the
// largest join sequence: a queue token stores each in 32 bits (admission_queue.h),
// and UINT32_MAX marks a token with no join sequence. Beyond: LIMIT_EXCEEDED.
inline constexpr int64_t kCompactIdMax = int64_t{UINT32_MAX} - 1;
// The longest span of join sequences (from the queue's head to its last join) a
// queue digest carries, in 64-bit words: 268 M join sequences, 32 MiB decoded. A
// longer line gets no digest (LIMIT_EXCEEDED; its polls go to the engine), and a
// digest claiming more is damaged: a few bytes can never make a reader allocate more.
inline constexpr int64_t kQueueDigestWordsMax = int64_t{1} << 22;

struct Limits {
  int64_t users_max = 100'000'000;
  int64_t concerts_max = 100'000;
  int64_t schedules_per_concert_max = 256;
  int64_t sections_per_schedule_max = 256;
  int64_t seats_per_schedule_max = 200'000;
  int64_t rows_per_section_max = 1'000;
  int64_t seats_per_row_max = 1'000;
  // Upper bound for a concert's max_seats_per_reservation sale setting.
  int64_t seats_per_reservation_max = 16;
  // Live (WAITING + ACTIVE) tokens per concert.
  int64_t queue_length_max = 5'000'000;
  int64_t queue_capacity_max = 1'000'000;
  Won price_max = 10'000'000;
  Won charge_amount_max = 10'000'000;
  Won balance_max = 100'000'000;
  int64_t text_length_max = 200;             // bytes of a title, name, grade
  int64_t idempotency_key_length_max = 128;  // bytes
  DurationUs idempotency_ttl_us = 24 * 3600 * kMicrosPerSecond;
  // Events kept in memory for `EventsAfter`; older ones are dropped first.
  int64_t event_retention_max = 1'000'000;
  int64_t list_limit_max = 10'000;  // items per page of EventsAfter
};

// INVALID_ARGUMENT unless every limit is sane: counts and amounts >= 1,
// event_retention_max and idempotency_ttl_us >= 0, text and key lengths at most
// 65,536 bytes, seats_per_reservation_max at most 64.
absl::Status ValidateLimits(const Limits& limits);

}  // namespace boxoffice
