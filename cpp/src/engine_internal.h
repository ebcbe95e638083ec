// Engine internals shared by the engine's own source files (engine.cc, and
// engine_state.cc for snapshots and the state hash): the records the engine
// keeps per user, per concert and per idempotency key. Not part of the public
// API.
#pragma once

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "boxoffice/engine.h"

namespace boxoffice {

struct Engine::User {
  AccountId account = 0;
  std::vector<ReservationId> reservations;
  std::vector<EntryId> history;
};

struct Engine::Concert {
  ConcertId id = 0;
  std::string title;
  std::string artist;
  std::string venue;
  SaleSettings sale;
  std::vector<std::string> grades;
  std::vector<ScheduleId> schedules;
  AccountId revenue_account = 0;
  TimeUs created_at = 0;
  std::unique_ptr<AdmissionQueue> queue;
  int64_t reservations_by_status[5] = {0, 0, 0, 0, 0};
  int64_t payments = 0;
};

struct Engine::IdempotencyRecord {
  std::string index_key;
  uint64_t fingerprint = 0;
  TimeUs expires_at = 0;
  std::variant<Reservation, ChargeResult, Payment> result;
};

// Arguments of a hold without owning containers (the batch path allocates
// nothing per command).
struct Engine::HoldArgs {
  UserId user_id = 0;
  TokenId token_id = 0;
  ScheduleId schedule_id = 0;
  std::span<const SeatId> seat_ids;
  int64_t quantity = 0;
  absl::string_view grade;
  absl::string_view idempotency_key;
};

}  // namespace boxoffice
