// HoldTimer: see hold_timer.h. The timer itself lives in the header (its
// operations are on every command's path); this file holds its snapshot code.
#include "boxoffice/hold_timer.h"

#include "boxoffice/snapshot_io.h"

namespace boxoffice {

// Tripwires: a new field or kind must be considered by the snapshot (is it
// stored, or rescheduled from the state on restore?); then update these.
static_assert(sizeof(TimerEntry) == 24, "new TimerEntry field");
static_assert(static_cast<int>(TimerKind::kIdempotencyExpiry) == 5, "new timer kind");

void HoldTimer::EncodeAdmissionTicks(SnapshotWriter& w, TimeUs clock) const {
  std::vector<TimerEntry> ticks;
  for (const TimerEntry& e : entries_) {
    if (e.kind == TimerKind::kAdmissionTick) ticks.push_back(e);
  }
  w.Count(ticks.size());
  for (const TimerEntry& t : ticks) {
    w.Time(t.at, clock);
    w.Int(t.id);
  }
}

std::vector<TimerEntry> HoldTimer::DecodeAdmissionTicks(SnapshotReader& r, TimeUs clock,
                                                        int64_t concerts) {
  std::vector<TimerEntry> ticks;
  const size_t n = r.Count("admission ticks", 2);
  for (size_t i = 0; i < n && r.ok(); ++i) {
    const TimeUs at = r.Time("admission tick", clock);
    const int64_t concert = r.Int("admission tick concert", 1, concerts);
    r.Check(at >= clock, "an admission tick lies in the past");
    ticks.push_back(TimerEntry{at, TimerKind::kAdmissionTick, concert});
  }
  return ticks;
}

}  // namespace boxoffice
