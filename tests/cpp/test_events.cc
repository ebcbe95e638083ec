// Tests of EventLog: consumers read events after a sequence number they have
// seen; numbering is dense from 1 and survives the retention window.
#include "boxoffice/events.h"

#include "absl/strings/match.h"
#include "boxoffice/snapshot_io.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace boxoffice {
namespace {

Event At(TimeUs at, EventType type) {
  Event e;
  e.at = at;
  e.type = type;
  return e;
}

std::vector<Seq> Seqs(const std::vector<Event>& events) {
  std::vector<Seq> out;
  for (const Event& e : events) out.push_back(e.seq);
  return out;
}

TEST_CASE("events are numbered densely from 1 and read after a sequence", "[events]") {
  EventLog log(100);
  CHECK(log.last_seq() == 0);
  CHECK(log.After(0, 10).empty());
  for (int i = 1; i <= 5; ++i) {
    CHECK(log.Append(At(i, EventType::kUserCreated)) == i);
  }
  CHECK(log.last_seq() == 5);
  CHECK(Seqs(log.After(0, 100)) == std::vector<Seq>{1, 2, 3, 4, 5});
  CHECK(Seqs(log.After(3, 100)) == std::vector<Seq>{4, 5});
  CHECK(Seqs(log.After(1, 2)) == std::vector<Seq>{2, 3});
  CHECK(log.After(5, 100).empty());
  CHECK(log.After(99, 100).empty());
  CHECK(log.After(0, 0).empty());
  // The stored payload is what was appended.
  const std::vector<Event> first = log.After(0, 1);
  REQUIRE(first.size() == 1);
  CHECK(first[0].at == 1);
  CHECK(first[0].type == EventType::kUserCreated);
}

TEST_CASE("the log keeps only the newest events but keeps numbering", "[events]") {
  EventLog log(3);
  for (int i = 1; i <= 10; ++i) log.Append(At(i, EventType::kBalanceCharged));
  CHECK(log.last_seq() == 10);
  CHECK(log.first_retained_seq() == 8);
  CHECK(Seqs(log.After(0, 100)) == std::vector<Seq>{8, 9, 10});
  CHECK(Seqs(log.After(8, 100)) == std::vector<Seq>{9, 10});
}

TEST_CASE("a log with no retention still numbers events", "[events]") {
  EventLog log(0);
  CHECK(log.Append(At(1, EventType::kUserCreated)) == 1);
  CHECK(log.Append(At(2, EventType::kUserCreated)) == 2);
  CHECK(log.After(0, 10).empty());
  CHECK(log.first_retained_seq() == 3);
}

TEST_CASE("every event type has a distinct CamelCase name", "[events]") {
  std::vector<std::string> names;
  for (int i = 0; i < static_cast<int>(EventType::kCount); ++i) {
    const std::string name(ToString(static_cast<EventType>(i)));
    INFO("event type " << i << " " << name);
    CHECK_FALSE(name.empty());
    CHECK(name != "Unknown");
    CHECK((name[0] >= 'A' && name[0] <= 'Z'));
    for (const std::string& other : names) CHECK(other != name);
    names.push_back(name);
  }
  CHECK(std::string(ToString(EventType::kReservationHeld)) == "ReservationHeld");
  CHECK(std::string(ToString(EventType::kPaymentSucceeded)) == "PaymentSucceeded");
  CHECK(std::string(ToString(EventType::kQueueAdmitted)) == "QueueAdmitted");
}


// --- snapshot -----------------------------------------------------------------------

TEST_CASE("the last sequence and the retained events round-trip through a snapshot body",
          "[events][snapshot]") {
  EventLog log(2);
  log.Append(At(100, EventType::kUserCreated));
  log.Append(At(200, EventType::kConcertCreated));
  Event held = At(300, EventType::kReservationHeld);
  held.user_id = 4;
  held.reservation_id = 7;
  held.amount = 30'000;
  held.value = 2;
  log.Append(held);
  SnapshotWriter w;
  log.Encode(w);

  EventLog restored(2);
  SnapshotReader r(w.bytes(), 2);
  restored.Decode(r, /*clock=*/300);
  REQUIRE(r.ok());
  CHECK(r.AtEnd());
  CHECK(restored.last_seq() == 3);
  CHECK(Seqs(restored.After(0, 10)) == std::vector<Seq>{2, 3});
  const Event back = restored.After(2, 1).at(0);
  CHECK((back.at == 300 && back.type == EventType::kReservationHeld && back.user_id == 4 &&
         back.reservation_id == 7 && back.amount == 30'000 && back.value == 2));

  // More events than the log retains, or events after the clock, are damage.
  EventLog smaller(1);
  SnapshotReader small(w.bytes(), 2);
  smaller.Decode(small, 300);
  CHECK(small.status().code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(small.status().message(), "more events than"));
  EventLog early(2);
  SnapshotReader before(w.bytes(), 2);
  early.Decode(before, 299);
  CHECK(absl::StrContains(before.status().message(), "after the clock"));
}

}  // namespace
}  // namespace boxoffice
