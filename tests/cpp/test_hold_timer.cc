// Tests of HoldTimer: deadlines fire in (at, kind, id) order, inclusively at
// their time, and cancelled deadlines never fire.
#include "boxoffice/hold_timer.h"

#include "absl/strings/match.h"
#include "boxoffice/digest.h"
#include "boxoffice/snapshot_io.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <random>
#include <tuple>
#include <vector>

namespace Catch {
template <>
struct StringMaker<boxoffice::TimerEntry> {
  static std::string convert(const boxoffice::TimerEntry& e) {
    std::ostringstream os;
    os << "{at=" << e.at << " kind=" << static_cast<int>(e.kind) << " id=" << e.id << "}";
    return os.str();
  }
};
}  // namespace Catch

namespace boxoffice {
namespace {

std::vector<TimerEntry> DrainUpTo(HoldTimer& timer, TimeUs now) {
  std::vector<TimerEntry> out;
  while (std::optional<TimerEntry> e = timer.PopDue(now)) out.push_back(*e);
  return out;
}

TEST_CASE("an empty timer has nothing due and no next deadline", "[hold_timer]") {
  HoldTimer timer;
  CHECK(timer.empty());
  CHECK(timer.size() == 0);
  CHECK_FALSE(timer.NextDeadline().has_value());
  CHECK_FALSE(timer.PopDue(INT64_MAX).has_value());
}

TEST_CASE("a deadline is due exactly at its time, not a microsecond before",
          "[hold_timer]") {
  HoldTimer timer;
  timer.Schedule(1'000, TimerKind::kHoldExpiry, 7);
  CHECK_FALSE(timer.PopDue(999).has_value());
  CHECK(timer.size() == 1);
  std::optional<TimerEntry> e = timer.PopDue(1'000);
  REQUIRE(e.has_value());
  CHECK(e->at == 1'000);
  CHECK(e->kind == TimerKind::kHoldExpiry);
  CHECK(e->id == 7);
  CHECK(timer.empty());
  CHECK_FALSE(timer.PopDue(1'000).has_value());
}

TEST_CASE("due deadlines fire in (at, kind, id) order", "[hold_timer]") {
  HoldTimer timer;
  // Scheduled in a scrambled order on purpose.
  timer.Schedule(20, TimerKind::kHoldExpiry, 1);
  timer.Schedule(10, TimerKind::kIdempotencyExpiry, 1);
  timer.Schedule(10, TimerKind::kAdmissionTick, 3);
  timer.Schedule(10, TimerKind::kHoldExpiry, 9);
  timer.Schedule(10, TimerKind::kHoldExpiry, 2);
  timer.Schedule(10, TimerKind::kQueueOpen, 5);
  timer.Schedule(10, TimerKind::kSessionExpiry, 4);
  timer.Schedule(10, TimerKind::kAbandon, 4);
  timer.Schedule(5, TimerKind::kAbandon, 100);

  const std::vector<TimerEntry> fired = DrainUpTo(timer, 20);
  const std::vector<TimerEntry> expected = {
      {5, TimerKind::kAbandon, 100},
      {10, TimerKind::kQueueOpen, 5},
      {10, TimerKind::kHoldExpiry, 2},
      {10, TimerKind::kHoldExpiry, 9},
      {10, TimerKind::kSessionExpiry, 4},
      {10, TimerKind::kAbandon, 4},
      {10, TimerKind::kAdmissionTick, 3},
      {10, TimerKind::kIdempotencyExpiry, 1},
      {20, TimerKind::kHoldExpiry, 1},
  };
  REQUIRE(fired.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("entry " << i);
    CHECK(fired[i] == expected[i]);
  }
  CHECK(timer.empty());
}

TEST_CASE("advancing fires only what is due and keeps later deadlines",
          "[hold_timer]") {
  HoldTimer timer;
  timer.Schedule(30, TimerKind::kSessionExpiry, 1);
  timer.Schedule(10, TimerKind::kHoldExpiry, 1);
  timer.Schedule(20, TimerKind::kHoldExpiry, 2);
  CHECK(timer.NextDeadline() == std::optional<TimeUs>(10));

  std::vector<TimerEntry> fired = DrainUpTo(timer, 25);
  REQUIRE(fired.size() == 2);
  CHECK(fired[0].at == 10);
  CHECK(fired[1].at == 20);
  CHECK(timer.size() == 1);
  CHECK(timer.NextDeadline() == std::optional<TimeUs>(30));

  // A deadline scheduled in the past (relative to the last advance) still fires.
  timer.Schedule(15, TimerKind::kAbandon, 3);
  fired = DrainUpTo(timer, 25);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0] == TimerEntry{15, TimerKind::kAbandon, 3});
}

TEST_CASE("a cancelled deadline never fires; cancel needs the exact entry",
          "[hold_timer]") {
  HoldTimer timer;
  timer.Schedule(100, TimerKind::kHoldExpiry, 1);
  timer.Schedule(100, TimerKind::kHoldExpiry, 2);

  // Wrong time, wrong kind or wrong id cancel nothing.
  CHECK_FALSE(timer.Cancel(101, TimerKind::kHoldExpiry, 1));
  CHECK_FALSE(timer.Cancel(100, TimerKind::kSessionExpiry, 1));
  CHECK_FALSE(timer.Cancel(100, TimerKind::kHoldExpiry, 3));
  CHECK(timer.size() == 2);

  CHECK(timer.Cancel(100, TimerKind::kHoldExpiry, 1));
  CHECK_FALSE(timer.Cancel(100, TimerKind::kHoldExpiry, 1));  // already gone
  const std::vector<TimerEntry> fired = DrainUpTo(timer, 1'000);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0].id == 2);
}

TEST_CASE("the same thing may have deadlines at two times; an identical entry is kept once",
          "[hold_timer]") {
  HoldTimer timer;
  timer.Schedule(50, TimerKind::kAbandon, 1);
  timer.Schedule(80, TimerKind::kAbandon, 1);
  timer.Schedule(80, TimerKind::kAbandon, 1);
  CHECK(timer.size() == 2);
  // Moving a deadline = cancel the old one, schedule the new one.
  CHECK(timer.Cancel(50, TimerKind::kAbandon, 1));
  CHECK(DrainUpTo(timer, 79).empty());
  CHECK(DrainUpTo(timer, 80).size() == 1);
}

TEST_CASE("ForEach visits live entries in firing order", "[hold_timer]") {
  HoldTimer timer;
  timer.Schedule(3, TimerKind::kHoldExpiry, 1);
  timer.Schedule(1, TimerKind::kAbandon, 2);
  timer.Schedule(2, TimerKind::kQueueOpen, 3);
  std::vector<int64_t> ids;
  timer.ForEach([&](const TimerEntry& e) { ids.push_back(e.id); });
  CHECK(ids == std::vector<int64_t>{2, 3, 1});
}

TEST_CASE("random schedules and cancels fire exactly the live entries, sorted",
          "[hold_timer]") {
  const uint64_t seed = GENERATE(1u, 2u, 3u, 42u);
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  HoldTimer timer;
  std::vector<TimerEntry> live;
  for (int i = 0; i < 2'000; ++i) {
    TimerEntry e{static_cast<TimeUs>(rng() % 500), static_cast<TimerKind>(rng() % 6),
                 static_cast<int64_t>(rng() % 50)};
    bool present = false;
    for (const TimerEntry& l : live) present = present || l == e;
    if (!present) live.push_back(e);
    timer.Schedule(e.at, e.kind, e.id);
    if (rng() % 3 == 0 && !live.empty()) {
      const size_t k = static_cast<size_t>(rng() % live.size());
      CHECK(timer.Cancel(live[k].at, live[k].kind, live[k].id));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }
  REQUIRE(timer.size() == live.size());
  std::sort(live.begin(), live.end());
  TimeUs now = 0;
  std::vector<TimerEntry> fired;
  while (!timer.empty()) {
    now += static_cast<TimeUs>(rng() % 40);
    for (const TimerEntry& e : DrainUpTo(timer, now)) {
      CHECK(e.at <= now);
      fired.push_back(e);
    }
    if (std::optional<TimeUs> next = timer.NextDeadline()) CHECK(*next > now);
  }
  CHECK(fired == live);
}


// --- snapshot -----------------------------------------------------------------------

TEST_CASE("a snapshot keeps only the admission ticks; a restore adds each once",
          "[hold_timer][snapshot]") {
  HoldTimer timer;
  timer.Schedule(500, TimerKind::kHoldExpiry, 1);
  timer.Schedule(700, TimerKind::kAdmissionTick, 2);
  timer.Schedule(600, TimerKind::kAdmissionTick, 1);
  SnapshotWriter w;
  timer.EncodeAdmissionTicks(w, /*clock=*/400);
  SnapshotReader r(w.bytes(), 2);
  const std::vector<TimerEntry> ticks = HoldTimer::DecodeAdmissionTicks(r, 400, /*concerts=*/2);
  REQUIRE(r.ok());
  CHECK(ticks == std::vector<TimerEntry>{{600, TimerKind::kAdmissionTick, 1},
                                         {700, TimerKind::kAdmissionTick, 2}});
  HoldTimer restored;
  for (const TimerEntry& t : ticks) CHECK(restored.Restore(t));
  CHECK_FALSE(restored.Restore(ticks[0]));
  CHECK(restored.size() == 2);

  // A tick due before the clock, or naming a concert that does not exist, is damage.
  SnapshotWriter stale;
  timer.EncodeAdmissionTicks(stale, /*clock=*/650);  // the tick at 600 s is overdue
  SnapshotReader later(stale.bytes(), 2);
  HoldTimer::DecodeAdmissionTicks(later, 650, 2);
  CHECK(absl::StrContains(later.status().message(), "lies in the past"));
  SnapshotReader fewer(w.bytes(), 2);
  HoldTimer::DecodeAdmissionTicks(fewer, 400, 1);
  CHECK(absl::StrContains(fewer.status().message(), "admission tick concert"));
}

TEST_CASE("the digest mixes the live entries only, in firing order", "[hold_timer][snapshot]") {
  HoldTimer a;
  a.Schedule(500, TimerKind::kHoldExpiry, 1);
  a.Schedule(300, TimerKind::kSessionExpiry, 9);
  HoldTimer b = a;
  b.Schedule(400, TimerKind::kAbandon, 3);  // stale: the predicate says so
  auto live = [](const TimerEntry& e) { return e.kind != TimerKind::kAbandon; };
  Digest da;
  a.Digest(da, live);
  Digest db;
  b.Digest(db, live);
  CHECK(da.value() == db.value());
  Digest all;
  b.Digest(all, [](const TimerEntry&) { return true; });
  CHECK(all.value() != db.value());
}

}  // namespace
}  // namespace boxoffice
