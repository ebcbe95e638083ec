// Domain events: every state change of the engine, numbered by a sequence.
//
// Consumers read events after a sequence number they have seen.
// The log keeps the most recent `event_retention_max` events in memory; the
// journal (journal.h) keeps all of them. Events are fixed-size records
// so that a ticket drop with millions of state changes stays cheap.
#pragma once

#include <cstdint>
#include <deque>
#include "absl/strings/string_view.h"
#include <vector>

#include "boxoffice/types.h"

namespace boxoffice {

class SnapshotReader;
class SnapshotWriter;

enum class EventType : uint8_t {
  kUserCreated = 0,
  kConcertCreated,
  kQueueJoined,       // token_id; value = 1 when joined before opens_at
  kQueueOpened,       // concert_id; value = pre-queue size shuffled
  kQueueAdmitted,     // token_id
  kQueueLeft,         // token_id
  kQueueAbandoned,    // token_id
  kQueueSessionExpired,  // token_id
  kQueueCompleted,    // token_id
  kReservationHeld,   // reservation_id; amount; value = seat count
  kSeatReleased,      // reservation_id; value = seat id
  kReservationCanceled,  // reservation_id
  kReservationExpired,   // reservation_id
  kPaymentSucceeded,  // reservation_id; amount; value = payment id
  kPaymentFailed,     // reservation_id; amount; value = balance at the time
  kReservationRefunded,  // reservation_id; amount
  kBalanceCharged,    // amount; value = balance after
  kCount
};

absl::string_view ToString(EventType t);

struct Event {
  Seq seq = 0;
  TimeUs at = 0;
  EventType type = EventType::kUserCreated;
  UserId user_id = 0;
  ConcertId concert_id = 0;
  TokenId token_id = 0;
  ReservationId reservation_id = 0;
  Won amount = 0;
  int64_t value = 0;
};

class EventLog {
 public:
  explicit EventLog(int64_t retention_max) : retention_max_(retention_max) {}

  // Appends `e` with the next sequence number and returns that number.
  Seq Append(Event e) {
    e.seq = ++last_seq_;
    if (retention_max_ > 0) {
      if (static_cast<int64_t>(events_.size()) >= retention_max_) {
        events_.pop_front();
      }
      events_.push_back(e);
    }
    return e.seq;
  }
  // Events with seq > after, oldest first, at most `limit`.
  std::vector<Event> After(Seq after, int64_t limit) const {
    std::vector<Event> out;
    if (events_.empty() || limit <= 0) return out;
    const Seq first = events_.front().seq;
    size_t start = after < first ? 0 : static_cast<size_t>(after - first + 1);
    for (size_t i = start; i < events_.size() && static_cast<int64_t>(out.size()) < limit; ++i) {
      out.push_back(events_[i]);
    }
    return out;
  }
  Seq last_seq() const { return last_seq_; }
  // The oldest sequence still readable (last_seq + 1 when none is kept).
  Seq first_retained_seq() const {
    return events_.empty() ? last_seq_ + 1 : events_.front().seq;
  }

  // Snapshot (snapshot_io.h): the last sequence and the retained events,
  // times as deltas from the previous event's. Decode replaces the log and
  // checks that no more events are kept than were appended or are retained,
  // and that none happened after `clock` or out of order.
  void Encode(SnapshotWriter& w) const;
  void Decode(SnapshotReader& r, TimeUs clock);
  // Feeds the log to `mix` for state hashes: its last sequence number only
  // (the retained events follow from the commands that numbered them).
  template <typename Mix>
  void Digest(Mix&& mix) const {
    mix(last_seq_);
  }

 private:
  int64_t retention_max_;
  Seq last_seq_ = 0;
  std::deque<Event> events_;
};

}  // namespace boxoffice
