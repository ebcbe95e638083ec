// HoldTimer: every deadline of the engine, ordered by time.
//
// Holds expire at exactly created_at + hold_ttl, ACTIVE tokens at
// activated_at + session_ttl, WAITING tokens that stop polling at
// last_seen_at + abandon_timeout, idempotency keys after their TTL, and a
// rate-limited queue wants to admit its next user at a given time. The engine
// advances this timer to `now` before every command and query, firing due
// entries in (deadline, kind, id) order, so nothing after a deadline ever sees
// the state from before it.
//
// Entries are cancelled lazily: when a hold is paid or cancelled, a token
// admitted, completed or left, or a WAITING token polls, its entry stays in
// the set, and the engine skips it when it comes due (the reservation is no
// longer PENDING, the token no longer in that state), or, for a poll, moves it
// to the new deadline then. So a poll costs no timer operation and an early
// end no erase; the price is stale entries that live until their old
// deadline, at most one per hold, session and WAITING token. Snapshots keep
// only the live deadlines and state hashes digest only those.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "absl/container/btree_set.h"
#include "boxoffice/types.h"

namespace boxoffice {

class SnapshotReader;
class SnapshotWriter;

enum class TimerKind : uint8_t {
  kQueueOpen = 0,       // id = concert: opens_at reached, shuffle the pre-queue
  kHoldExpiry = 1,      // id = reservation
  kSessionExpiry = 2,   // id = token
  kAbandon = 3,         // id = token
  kAdmissionTick = 4,   // id = concert: the admission rate allows one more
  kIdempotencyExpiry = 5,  // id = idempotency record
};

struct TimerEntry {
  TimeUs at;
  TimerKind kind;
  int64_t id;

  friend bool operator<(const TimerEntry& a, const TimerEntry& b) {
    return std::tie(a.at, a.kind, a.id) < std::tie(b.at, b.kind, b.id);
  }
  friend bool operator==(const TimerEntry& a, const TimerEntry& b) {
    return a.at == b.at && a.kind == b.kind && a.id == b.id;
  }
};

class HoldTimer {
 public:
  void Schedule(TimeUs at, TimerKind kind, int64_t id) {
    entries_.insert(TimerEntry{at, kind, id});
  }
  // Returns whether the entry was scheduled (the engine cancels lazily instead).
  bool Cancel(TimeUs at, TimerKind kind, int64_t id) {
    return entries_.erase(TimerEntry{at, kind, id}) > 0;
  }
  // Removes and returns the earliest entry with at <= now, if any.
  std::optional<TimerEntry> PopDue(TimeUs now) {
    if (entries_.empty()) return std::nullopt;
    auto it = entries_.begin();
    if (it->at > now) return std::nullopt;
    TimerEntry e = *it;
    entries_.erase(it);
    return e;
  }
  std::optional<TimeUs> NextDeadline() const {
    if (entries_.empty()) return std::nullopt;
    return entries_.begin()->at;
  }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  template <typename F>
  void ForEach(F&& f) const {
    for (const TimerEntry& e : entries_) f(e);
  }

  // Snapshot (snapshot_io.h). Every deadline but the admission ticks follows
  // from what it times out (a hold's expires_at, a session's start, ...), so
  // the engine schedules those again on restore; a tick does not (a stale one
  // may outlive its queue's tick_at), so the ticks are stored: as (deadline,
  // concert) pairs, deadlines as deltas from `clock`. DecodeAdmissionTicks
  // checks that each names a concert in [1, concerts] and is not due before
  // `clock`; the engine adds them with Restore once it has scheduled the rest.
  void EncodeAdmissionTicks(SnapshotWriter& w, TimeUs clock) const;
  static std::vector<TimerEntry> DecodeAdmissionTicks(SnapshotReader& r, TimeUs clock,
                                                      int64_t concerts);
  // Drops every entry (a restore schedules them again).
  void Clear() { entries_.clear(); }
  // Adds `e`; false when it was there already.
  bool Restore(const TimerEntry& e) { return entries_.insert(e).second; }

  // Feeds the entries `live` accepts (stale ones are not state) to `mix`:
  // their count, then each entry's deadline, kind and id in firing order.
  template <typename Mix, typename Live>
  void Digest(Mix&& mix, Live&& live) const {
    std::vector<TimerEntry> kept;
    for (const TimerEntry& e : entries_) {
      if (live(e)) kept.push_back(e);
    }
    mix(static_cast<int64_t>(kept.size()));
    for (const TimerEntry& e : kept) {
      mix(e.at);
      mix(static_cast<int64_t>(e.kind));
      mix(e.id);
    }
  }

 private:
  absl::btree_set<TimerEntry> entries_;
};

}  // namespace boxoffice
