// Reservation: seats of one schedule held by one user, and its life cycle.
//
// PENDING (seats HELD until expires_at) ends exactly once: CONFIRMED by a
// payment, EXPIRED at exactly expires_at, or CANCELED by the user (or by the
// payment failure policy). A CONFIRMED reservation may later be REFUNDED.
// Payments are the money side of a confirmation.
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/container/inlined_vector.h"
#include "boxoffice/types.h"

namespace boxoffice {

using SeatList = absl::InlinedVector<SeatId, 4>;

struct Reservation {
  ReservationId id = 0;
  UserId user_id = 0;
  ConcertId concert_id = 0;
  ScheduleId schedule_id = 0;
  TokenId token_id = 0;  // the queue token that held it
  ReservationStatus status = ReservationStatus::kPending;
  SeatList seat_ids;      // seats still part of it, in hold order
  Won amount = 0;         // sum of the seats' prices
  TimeUs created_at = 0;
  TimeUs expires_at = 0;  // created_at + hold_ttl
  TimeUs ended_at = kNever;  // when it left PENDING
  PaymentId payment_id = 0;
};

enum class PaymentStatus : uint8_t { kSucceeded = 0, kRefunded = 1 };
absl::string_view ToString(PaymentStatus s);

struct Payment {
  PaymentId id = 0;
  ReservationId reservation_id = 0;
  UserId user_id = 0;
  Won amount = 0;
  PaymentStatus status = PaymentStatus::kSucceeded;
  TimeUs paid_at = 0;
  Won balance_after = 0;  // the payer's balance right after the debit
};

// What a charge returns (and what a retried charge returns again).
struct ChargeResult {
  EntryId entry_id = 0;
  UserId user_id = 0;
  Won amount = 0;
  Won balance = 0;  // balance right after the charge
  TimeUs at = 0;
};

}  // namespace boxoffice
