// The values the engine takes and gives: a concert's specification and sale
// settings (what creating a concert takes) and the views of its state that
// commands and queries return (tokens, concerts, schedules, seats, stats).
// Times are microseconds since the Unix epoch (`TimeUs`), money is won.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "boxoffice/reservation.h"
#include "boxoffice/seat_inventory.h"
#include "boxoffice/types.h"

namespace boxoffice {

// Sale settings of a concert (HTTP `sale` object), durations in microseconds.
struct SaleSettings {
  TimeUs opens_at = kNever;              // kNever = open at creation
  int64_t queue_capacity = 200;          // most ACTIVE tokens at once
  int64_t admission_per_minute = kNoLimit;  // admissions per minute; kNoLimit = no cap
  DurationUs session_ttl_us = 600 * kMicrosPerSecond;
  DurationUs hold_ttl_us = 300 * kMicrosPerSecond;
  int64_t max_seats_per_reservation = 4;
  int64_t max_seats_per_user = kNoLimit;    // HELD + SOLD per concert; kNoLimit = no cap
  bool release_on_payment_failure = false;
  DurationUs abandon_timeout_us = 60 * kMicrosPerSecond;
  DurationUs poll_interval_us = 5 * kMicrosPerSecond;
};

struct ScheduleSpec {
  TimeUs starts_at = 0;
  std::vector<SectionSpec> sections;
};

struct ConcertSpec {
  std::string title;
  std::string artist;
  std::string venue;
  std::vector<ScheduleSpec> schedules;
  SaleSettings sale;
};

struct ScheduleView {
  ScheduleId id = 0;
  ConcertId concert_id = 0;
  TimeUs starts_at = 0;
  int64_t seats_total = 0;
  int64_t seats_available = 0;
  int64_t seats_held = 0;
  int64_t seats_sold = 0;
};

struct ConcertView {
  ConcertId id = 0;
  std::string title;
  std::string artist;
  std::string venue;
  SaleSettings sale;
  std::vector<std::string> grades;  // distinct grades, in seat-map order
  std::vector<ScheduleView> schedules;
  TimeUs created_at = 0;
};

struct SeatView {
  SeatId id = 0;
  ScheduleId schedule_id = 0;
  std::string label;    // "A-3-12"
  std::string section;
  int64_t row = 0;      // 1-based
  int64_t number = 0;   // 1-based
  std::string grade;
  Won price = 0;
  SeatStatus status = SeatStatus::kAvailable;
};

struct TokenView {
  TokenId id = 0;
  UserId user_id = 0;
  ConcertId concert_id = 0;
  TokenStatus status = TokenStatus::kWaiting;
  TokenEnd end = TokenEnd::kNone;
  int64_t position = -1;  // WAITING tokens ahead; -1 when not WAITING or in the pre-queue
  int64_t join_seq = -1;  // the order of admission; -1 in the pre-queue (queue_digest.h reads it)
  DurationUs eta_us = 0;  // estimated wait until ACTIVE (WAITING only)
  DurationUs poll_after_us = 0;
  TimeUs joined_at = 0;
  TimeUs activated_at = kNever;
  TimeUs expires_at = kNever;
  TimeUs ended_at = kNever;
  // JOIN only: true when this call made the token, false when it returned the
  // user's live one (HTTP: 201 or 200); false in every other answer.
  bool created = false;
};

struct ConcertStats {
  ConcertId concert_id = 0;
  int64_t queue_waiting = 0;
  int64_t queue_active = 0;
  int64_t queue_joined_total = 0;
  int64_t queue_admitted_total = 0;
  int64_t queue_abandoned_total = 0;
  int64_t seats_total = 0;
  int64_t seats_available = 0;
  int64_t seats_held = 0;
  int64_t seats_sold = 0;
  int64_t reservations_pending = 0;
  int64_t reservations_confirmed = 0;
  int64_t reservations_expired = 0;
  int64_t reservations_canceled = 0;
  int64_t reservations_refunded = 0;
  int64_t payments = 0;
  Won revenue = 0;  // balance of the concert's revenue account
};

}  // namespace boxoffice
