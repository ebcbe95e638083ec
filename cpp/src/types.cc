// Names of the status enums, as they appear in Python and HTTP.
#include "boxoffice/types.h"

#include "boxoffice/events.h"
#include "boxoffice/ledger.h"
#include "boxoffice/reservation.h"

namespace boxoffice {

absl::string_view ToString(TokenStatus s) {
  switch (s) {
    case TokenStatus::kWaiting: return "WAITING";
    case TokenStatus::kActive: return "ACTIVE";
    case TokenStatus::kExpired: return "EXPIRED";
  }
  return "UNKNOWN";
}

absl::string_view ToString(SeatStatus s) {
  switch (s) {
    case SeatStatus::kAvailable: return "AVAILABLE";
    case SeatStatus::kHeld: return "HELD";
    case SeatStatus::kSold: return "SOLD";
  }
  return "UNKNOWN";
}

absl::string_view ToString(ReservationStatus s) {
  switch (s) {
    case ReservationStatus::kPending: return "PENDING";
    case ReservationStatus::kConfirmed: return "CONFIRMED";
    case ReservationStatus::kExpired: return "EXPIRED";
    case ReservationStatus::kCanceled: return "CANCELED";
    case ReservationStatus::kRefunded: return "REFUNDED";
  }
  return "UNKNOWN";
}

absl::string_view ToString(TokenEnd e) {
  switch (e) {
    case TokenEnd::kNone: return "";
    case TokenEnd::kLeft: return "LEFT";
    case TokenEnd::kAbandoned: return "ABANDONED";
    case TokenEnd::kSessionExpired: return "SESSION_EXPIRED";
    case TokenEnd::kCompleted: return "COMPLETED";
  }
  return "UNKNOWN";
}

absl::string_view ToString(PaymentStatus s) {
  switch (s) {
    case PaymentStatus::kSucceeded: return "SUCCEEDED";
    case PaymentStatus::kRefunded: return "REFUNDED";
  }
  return "UNKNOWN";
}

absl::string_view ToString(EntryKind k) {
  switch (k) {
    case EntryKind::kCharge: return "CHARGE";
    case EntryKind::kPayment: return "PAYMENT";
    case EntryKind::kRefund: return "REFUND";
  }
  return "UNKNOWN";
}

absl::string_view ToString(EventType t) {
  switch (t) {
    case EventType::kUserCreated: return "UserCreated";
    case EventType::kConcertCreated: return "ConcertCreated";
    case EventType::kQueueJoined: return "QueueJoined";
    case EventType::kQueueOpened: return "QueueOpened";
    case EventType::kQueueAdmitted: return "QueueAdmitted";
    case EventType::kQueueLeft: return "QueueLeft";
    case EventType::kQueueAbandoned: return "QueueAbandoned";
    case EventType::kQueueSessionExpired: return "QueueSessionExpired";
    case EventType::kQueueCompleted: return "QueueCompleted";
    case EventType::kReservationHeld: return "ReservationHeld";
    case EventType::kSeatReleased: return "SeatReleased";
    case EventType::kReservationCanceled: return "ReservationCanceled";
    case EventType::kReservationExpired: return "ReservationExpired";
    case EventType::kPaymentSucceeded: return "PaymentSucceeded";
    case EventType::kPaymentFailed: return "PaymentFailed";
    case EventType::kReservationRefunded: return "ReservationRefunded";
    case EventType::kBalanceCharged: return "BalanceCharged";
    case EventType::kCount: break;
  }
  return "Unknown";
}

}  // namespace boxoffice
