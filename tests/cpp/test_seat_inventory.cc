// Tests of SeatInventory: the seat map of one schedule, seat ids and labels,
// all-or-nothing availability checks, status counts, and best-available
// placement (adjacent seats in one row, front rows first, no single orphan
// seat when avoidable, grade filter).
#include "boxoffice/seat_inventory.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {
namespace {

constexpr ScheduleId kSchedule = 4;
constexpr ConcertId kConcert = 2;
constexpr TimeUs kStartsAt = 1'800'000'000LL * kMicrosPerSecond;

std::string Code(const absl::Status& s) {
  return std::string(GetErrorInfo(GetErrorCode(s)).name);
}
std::string StatusName(SeatStatus s) { return std::string(ToString(s)); }

SectionSpec Section(std::string name, int64_t rows, int64_t seats_per_row,
                    std::string grade, Won price) {
  SectionSpec s;
  s.name = std::move(name);
  s.rows = rows;
  s.seats_per_row = seats_per_row;
  s.grade = std::move(grade);
  s.price = price;
  return s;
}

// A: 2 rows x 3 seats VIP (ids 101..106), B: 3 rows x 4 seats R (ids 107..118).
SeatInventory TwoSections() {
  return SeatInventory(kSchedule, kConcert, kStartsAt, 101,
                       {Section("A", 2, 3, "VIP", 165'000), Section("B", 3, 4, "R", 99'000)});
}

// One section of `rows` rows x `seats` seats; seat (row r, number n), both
// 1-based, has id (r - 1) * seats + n.
SeatInventory Rows(int64_t rows, int64_t seats) {
  return SeatInventory(1, 1, kStartsAt, 1, {Section("F", rows, seats, "GA", 10'000)});
}

std::optional<std::vector<SeatId>> Seats(std::initializer_list<SeatId> ids) {
  return std::vector<SeatId>(ids);
}

TEST_CASE("seats are laid out section by section, row by row, with contiguous ids",
          "[seat_inventory]") {
  const SeatInventory inv = TwoSections();
  CHECK(inv.id() == kSchedule);
  CHECK(inv.concert_id() == kConcert);
  CHECK(inv.starts_at() == kStartsAt);
  CHECK(inv.first_seat_id() == 101);
  CHECK(inv.seat_count() == 18);
  CHECK_FALSE(inv.Contains(100));
  CHECK(inv.Contains(101));
  CHECK(inv.Contains(118));
  CHECK_FALSE(inv.Contains(119));
  CHECK_FALSE(inv.Contains(0));

  REQUIRE(inv.sections().size() == 2);
  CHECK(inv.sections()[0].spec.name == "A");
  CHECK(inv.sections()[0].first_seat_index == 0);
  CHECK(inv.sections()[1].spec.name == "B");
  CHECK(inv.sections()[1].first_seat_index == 6);

  CHECK(inv.Label(101) == "A-1-1");
  CHECK(inv.Label(103) == "A-1-3");
  CHECK(inv.Label(104) == "A-2-1");
  CHECK(inv.Label(106) == "A-2-3");
  CHECK(inv.Label(107) == "B-1-1");
  CHECK(inv.Label(112) == "B-2-2");
  CHECK(inv.Label(118) == "B-3-4");

  CHECK(inv.seat(112).section == 1);
  CHECK(inv.seat(112).row == 1);
  CHECK(inv.seat(112).number == 1);
  CHECK(inv.section_of(105).spec.grade == "VIP");
  CHECK(inv.section_of(110).spec.grade == "R");
  CHECK(inv.price(101) == 165'000);
  CHECK(inv.price(118) == 99'000);

  CHECK(inv.count(SeatStatus::kAvailable) == 18);
  CHECK(inv.count(SeatStatus::kHeld) == 0);
  CHECK(inv.count(SeatStatus::kSold) == 0);
  for (SeatId id = 101; id <= 118; ++id) {
    CHECK(StatusName(inv.seat(id).status) == "AVAILABLE");
    CHECK(inv.seat(id).reservation_id == 0);
  }
}

TEST_CASE("labels use the section name and 1-based row and number, also for big maps",
          "[seat_inventory]") {
  const SeatInventory inv(9, 1, kStartsAt, 1'000,
                          {Section("Floor", 30, 40, "S", 1), Section("2F-East", 12, 25, "A", 2)});
  CHECK(inv.seat_count() == 30 * 40 + 12 * 25);
  CHECK(inv.Label(1'000) == "Floor-1-1");
  CHECK(inv.Label(1'000 + 40) == "Floor-2-1");
  CHECK(inv.Label(1'000 + 30 * 40 - 1) == "Floor-30-40");
  CHECK(inv.Label(1'000 + 30 * 40) == "2F-East-1-1");
  CHECK(inv.Label(1'000 + 30 * 40 + 12 * 25 - 1) == "2F-East-12-25");
}

TEST_CASE("CheckAvailable names the first offending seat in list order", "[seat_inventory]") {
  SeatInventory inv = TwoSections();
  CHECK(inv.CheckAvailable(std::vector<SeatId>{101, 102, 118}).ok());

  const absl::Status unknown = inv.CheckAvailable(std::vector<SeatId>{101, 200});
  CHECK(Code(unknown) == "SEAT_NOT_FOUND");
  CHECK(GetErrorDetails(unknown).seat_id == std::optional<int64_t>(200));
  CHECK(Code(inv.CheckAvailable(std::vector<SeatId>{100})) == "SEAT_NOT_FOUND");
  CHECK(Code(inv.CheckAvailable(std::vector<SeatId>{119})) == "SEAT_NOT_FOUND");

  inv.Hold(102, 1);
  inv.Hold(103, 1);
  inv.Sell(103);
  const absl::Status held = inv.CheckAvailable(std::vector<SeatId>{101, 102, 200});
  CHECK(Code(held) == "SEAT_UNAVAILABLE");
  CHECK(GetErrorDetails(held).seat_id == std::optional<int64_t>(102));
  const absl::Status sold = inv.CheckAvailable(std::vector<SeatId>{103, 102});
  CHECK(Code(sold) == "SEAT_UNAVAILABLE");
  CHECK(GetErrorDetails(sold).seat_id == std::optional<int64_t>(103));
  const absl::Status first_unknown = inv.CheckAvailable(std::vector<SeatId>{200, 102});
  CHECK(Code(first_unknown) == "SEAT_NOT_FOUND");
  CHECK(GetErrorDetails(first_unknown).seat_id == std::optional<int64_t>(200));

  // Checking changes nothing.
  CHECK(inv.count(SeatStatus::kAvailable) == 16);
  CHECK(StatusName(inv.seat(101).status) == "AVAILABLE");
}

TEST_CASE("hold, sell and release move seats between states and keep counts",
          "[seat_inventory]") {
  SeatInventory inv = TwoSections();
  inv.Hold(101, 7);
  inv.Hold(102, 7);
  inv.Hold(110, 8);
  CHECK(StatusName(inv.seat(101).status) == "HELD");
  CHECK(inv.seat(101).reservation_id == 7);
  CHECK(inv.seat(110).reservation_id == 8);
  CHECK(inv.count(SeatStatus::kAvailable) == 15);
  CHECK(inv.count(SeatStatus::kHeld) == 3);

  inv.Sell(101);
  inv.Sell(102);
  CHECK(StatusName(inv.seat(101).status) == "SOLD");
  CHECK(inv.seat(101).reservation_id == 7);
  CHECK(inv.count(SeatStatus::kHeld) == 1);
  CHECK(inv.count(SeatStatus::kSold) == 2);

  inv.Release(110);  // HELD -> AVAILABLE (expiry, cancel)
  inv.Release(101);  // SOLD -> AVAILABLE (refund)
  CHECK(StatusName(inv.seat(110).status) == "AVAILABLE");
  CHECK(inv.seat(110).reservation_id == 0);
  CHECK(StatusName(inv.seat(101).status) == "AVAILABLE");
  CHECK(inv.seat(101).reservation_id == 0);
  CHECK(inv.count(SeatStatus::kAvailable) == 17);
  CHECK(inv.count(SeatStatus::kHeld) == 0);
  CHECK(inv.count(SeatStatus::kSold) == 1);
  CHECK(inv.count(SeatStatus::kAvailable) + inv.count(SeatStatus::kHeld) +
            inv.count(SeatStatus::kSold) ==
        inv.seat_count());

  // A released seat can be held again by someone else.
  CHECK(inv.CheckAvailable(std::vector<SeatId>{101, 110}).ok());
  inv.Hold(101, 9);
  CHECK(inv.seat(101).reservation_id == 9);
}

TEST_CASE("best available takes the leftmost seats of the first row that fits",
          "[seat_inventory]") {
  SeatInventory inv = Rows(3, 10);
  CHECK(inv.FindBestAvailable(2, "") == Seats({1, 2}));
  CHECK(inv.FindBestAvailable(10, "") == Seats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  CHECK_FALSE(inv.FindBestAvailable(11, "").has_value());
  // Finding does not hold.
  CHECK(inv.count(SeatStatus::kAvailable) == 30);

  // A full front row is skipped; a row with one free seat serves one.
  for (SeatId s = 1; s <= 10; ++s) inv.Hold(s, 1);
  CHECK(inv.FindBestAvailable(3, "") == Seats({11, 12, 13}));
  inv.Release(7);
  CHECK(inv.FindBestAvailable(1, "") == Seats({7}));
  CHECK(inv.FindBestAvailable(2, "") == Seats({11, 12}));
}

TEST_CASE("best available needs adjacent seats in one row", "[seat_inventory]") {
  SeatInventory inv = Rows(2, 4);
  // Row 1: _ X _ X ; row 2: X _ X _  -> 4 free seats, no two adjacent.
  inv.Hold(2, 1);
  inv.Hold(4, 1);
  inv.Hold(5, 1);
  inv.Hold(7, 1);
  CHECK_FALSE(inv.FindBestAvailable(2, "").has_value());
  CHECK(inv.FindBestAvailable(1, "") == Seats({1}));
}

TEST_CASE("best available avoids leaving a single orphan seat when it can",
          "[seat_inventory]") {
  SECTION("a later run that fits exactly beats earlier runs that would orphan one") {
    SeatInventory inv = Rows(1, 10);
    // Runs: [1..3] L=3, [5..7] L=3, [9..10] L=2.
    inv.Hold(4, 1);
    inv.Hold(8, 1);
    CHECK(inv.FindBestAvailable(2, "") == Seats({9, 10}));
  }
  SECTION("a run that leaves two or more free is fine") {
    SeatInventory inv = Rows(1, 10);
    // Runs: [1..3] L=3 (orphan), [5..10] L=6 (leaves 4).
    inv.Hold(4, 1);
    CHECK(inv.FindBestAvailable(2, "") == Seats({5, 6}));
  }
  SECTION("when every fitting run orphans a seat, the first fitting run wins") {
    SeatInventory inv = Rows(1, 10);
    // Runs: [1..3], [5..7] (L=3 each), [9] too short.
    inv.Hold(4, 1);
    inv.Hold(8, 1);
    inv.Hold(10, 1);
    CHECK(inv.FindBestAvailable(2, "") == Seats({1, 2}));
  }
  SECTION("the orphan rule looks across rows: a back row beats an orphan in front") {
    SeatInventory inv = Rows(2, 4);
    inv.Hold(1, 1);  // row 1: X _ _ _ (run of 3)
    CHECK(inv.FindBestAvailable(2, "") == Seats({5, 6}));
    CHECK(inv.FindBestAvailable(3, "") == Seats({2, 3, 4}));
  }
  SECTION("a single seat prefers a gap of one over splitting a pair") {
    SeatInventory inv = Rows(1, 4);
    inv.Hold(3, 1);  // _ _ X _
    CHECK(inv.FindBestAvailable(1, "") == Seats({4}));
  }
}

TEST_CASE("best available filters by grade, sections in seat-map order",
          "[seat_inventory]") {
  SeatInventory inv = TwoSections();
  CHECK(inv.FindBestAvailable(2, "VIP") == Seats({101, 102}));
  CHECK(inv.FindBestAvailable(2, "R") == Seats({107, 108}));
  // Any grade: both VIP rows (3 seats) would orphan one seat, the first R row does not.
  CHECK(inv.FindBestAvailable(2, "") == Seats({107, 108}));
  CHECK(inv.FindBestAvailable(3, "") == Seats({101, 102, 103}));
  CHECK_FALSE(inv.FindBestAvailable(1, "S").has_value());
  CHECK_FALSE(inv.FindBestAvailable(4, "VIP").has_value());  // VIP rows have 3 seats
  CHECK(inv.FindBestAvailable(4, "") == Seats({107, 108, 109, 110}));

  // Fill VIP: any-grade requests move on to the next section.
  for (SeatId s = 101; s <= 106; ++s) inv.Hold(s, 1);
  CHECK_FALSE(inv.FindBestAvailable(1, "VIP").has_value());
  CHECK(inv.FindBestAvailable(1, "") == Seats({107}));
  inv.Release(105);
  CHECK(inv.FindBestAvailable(1, "VIP") == Seats({105}));
}

TEST_CASE("best available on a random map always returns free adjacent seats",
          "[seat_inventory]") {
  const uint64_t seed = GENERATE(1u, 2u, 3u, 4u);
  INFO("seed " << seed);
  uint64_t x = seed;
  auto next = [&x]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  SeatInventory inv = Rows(20, 12);
  int64_t held = 0;
  for (int step = 0; step < 400; ++step) {
    const int64_t quantity = static_cast<int64_t>(1 + next() % 4);
    std::optional<std::vector<SeatId>> found = inv.FindBestAvailable(quantity, "");
    if (!found) {
      // Then no row has a run of `quantity` free seats.
      for (int64_t r = 0; r < 20; ++r) {
        int64_t run = 0;
        for (int64_t n = 1; n <= 12; ++n) {
          run = inv.seat(r * 12 + n).status == SeatStatus::kAvailable ? run + 1 : 0;
          CHECK(run < quantity);
        }
      }
    } else {
      REQUIRE(static_cast<int64_t>(found->size()) == quantity);
      CHECK(inv.CheckAvailable(*found).ok());
      for (size_t i = 1; i < found->size(); ++i) {
        CHECK((*found)[i] == (*found)[i - 1] + 1);
        CHECK(inv.seat((*found)[i]).row == inv.seat((*found)[0]).row);
      }
      for (SeatId s : *found) inv.Hold(s, step + 1);
      held += quantity;
    }
    // Now and then give some seats back.
    if (next() % 3 == 0) {
      const SeatId s = static_cast<SeatId>(1 + next() % 240);
      if (inv.seat(s).status == SeatStatus::kHeld) {
        inv.Release(s);
        --held;
      }
    }
    REQUIRE(inv.count(SeatStatus::kHeld) == held);
    REQUIRE(inv.count(SeatStatus::kAvailable) == 240 - held);
  }
}


// --- snapshot -----------------------------------------------------------------------

// A digest of what `digest` feeds (the state hash's building block).
template <typename F>
uint64_t DigestOf(F&& digest) {
  Digest d;
  digest(d);
  return d.value();
}

TEST_CASE("the seat map and every seat's status and holder round-trip through a snapshot body",
          "[seat_inventory][snapshot]") {
  SeatInventory s = TwoSections();
  s.Hold(101, 3);
  s.Hold(110, 4);
  s.Sell(110);
  SnapshotWriter w;
  s.EncodeSeatMap(w);
  s.EncodeSeats(w);

  SnapshotReader r(w.bytes(), 2);
  int64_t seats_declared = 0;
  std::unique_ptr<SeatInventory> restored =
      SeatInventory::DecodeSeatMap(r, kSchedule, kConcert, 101, Limits{}, seats_declared);
  REQUIRE(restored != nullptr);
  CHECK(seats_declared == 18);
  restored->DecodeSeats(r, /*reservations=*/4);
  REQUIRE(r.ok());
  CHECK(r.AtEnd());
  CHECK(restored->starts_at() == kStartsAt);
  CHECK(restored->Label(118) == "B-3-4");
  CHECK(restored->seat(101).status == SeatStatus::kHeld);
  CHECK(restored->seat(110).status == SeatStatus::kSold);
  CHECK(restored->count(SeatStatus::kAvailable) == 16);
  CHECK(DigestOf([&](Digest& d) { restored->Digest(d); }) ==
        DigestOf([&](Digest& d) { s.Digest(d); }));

  // A holder beyond the reservations the snapshot has is damage, not a seat.
  SnapshotReader fewer(w.bytes(), 2);
  seats_declared = 0;
  std::unique_ptr<SeatInventory> other =
      SeatInventory::DecodeSeatMap(fewer, kSchedule, kConcert, 101, Limits{}, seats_declared);
  REQUIRE(other != nullptr);
  other->DecodeSeats(fewer, /*reservations=*/3);
  CHECK(fewer.status().code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(fewer.status().message(), "seat 110 names no reservation"));
}

TEST_CASE("a seat map beyond the limits or the bytes left is damage", "[seat_inventory][snapshot]") {
  SnapshotWriter w;
  TwoSections().EncodeSeatMap(w);
  Limits small;
  small.seats_per_schedule_max = 17;
  SnapshotReader r(w.bytes(), 2);
  int64_t seats_declared = 0;
  CHECK(SeatInventory::DecodeSeatMap(r, kSchedule, kConcert, 101, small, seats_declared) ==
        nullptr);
  CHECK(absl::StrContains(r.status().message(), "too many seats"));
  // 18 seats but no byte left for their statuses.
  SnapshotReader bare(w.bytes(), 2);
  seats_declared = 0;
  CHECK(SeatInventory::DecodeSeatMap(bare, kSchedule, kConcert, 101, Limits{}, seats_declared) ==
        nullptr);
  CHECK(absl::StrContains(bare.status().message(), "more seats than bytes left"));
}

}  // namespace
}  // namespace boxoffice
