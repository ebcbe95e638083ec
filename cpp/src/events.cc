// EventLog: see events.h. The log itself lives in the header (Append is on
// every command's path); this file holds its snapshot code.
#include "boxoffice/events.h"

#include <algorithm>

#include "boxoffice/snapshot_io.h"

namespace boxoffice {

// Tripwires: a new field or member must be added to the snapshot (then update the size).
static_assert(sizeof(Event) == 72, "new Event field: add it to the snapshot");
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(EventLog) == 96, "new EventLog member: add it to the snapshot");
#endif

void EventLog::Encode(SnapshotWriter& w) const {
  w.Int(last_seq_);
  w.Count(events_.size());
  TimeUs prev_at = 0;
  for (const Event& ev : events_) {
    w.Time(ev.at, prev_at);
    prev_at = ev.at;
    w.U8(static_cast<uint8_t>(ev.type));
    w.Int(ev.user_id);
    w.Int(ev.concert_id);
    w.Int(ev.token_id);
    w.Int(ev.reservation_id);
    w.Int(ev.amount);
    w.Int(ev.value);
  }
}

void EventLog::Decode(SnapshotReader& r, TimeUs clock) {
  events_.clear();
  last_seq_ = r.Int("last event seq", 0, kSnapshotTimeLimit);
  const size_t n = r.Count("events", 8);
  r.Check(static_cast<int64_t>(n) <= last_seq_ &&
              static_cast<int64_t>(n) <= std::max<int64_t>(0, retention_max_),
          "more events than were appended or are retained");
  TimeUs prev_at = 0;
  for (size_t i = 0; i < n && r.ok(); ++i) {
    Event ev;
    ev.seq = last_seq_ - static_cast<Seq>(n) + 1 + static_cast<Seq>(i);
    ev.at = r.Past("event at", prev_at, clock);
    prev_at = ev.at;
    ev.type = r.Enum<EventType>("event type", static_cast<int>(EventType::kCount));
    ev.user_id = r.Int();
    ev.concert_id = r.Int();
    ev.token_id = r.Int();
    ev.reservation_id = r.Int();
    ev.amount = r.Int();
    ev.value = r.Int();
    events_.push_back(ev);
  }
}

}  // namespace boxoffice
