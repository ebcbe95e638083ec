// SeatInventory: the seat map of one schedule and the status of every seat
// (AVAILABLE, HELD by a reservation, SOLD by a payment).
//
// Seats are laid out section by section, row by row, in one flat array; their
// ids are a contiguous range [first_seat_id, first_seat_id + seat_count), so a
// seat is found by subtraction. Each seat is AVAILABLE, HELD by exactly one
// reservation, or SOLD to exactly one reservation. Holds are all-or-nothing:
// `CheckAvailable` validates every seat before `Hold` changes any. Counts per
// status and available seats per row are kept up to date so that counts are
// O(1) and best-available skips full rows.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "boxoffice/types.h"

namespace boxoffice {

class SnapshotReader;
class SnapshotWriter;
struct Limits;

struct SectionSpec {
  std::string name;        // e.g. "A"
  int64_t rows = 0;
  int64_t seats_per_row = 0;
  std::string grade;       // e.g. "VIP"
  Won price = 0;           // per seat
};

struct Seat {
  ReservationId reservation_id = 0;  // holder or buyer; 0 when AVAILABLE
  uint32_t section = 0;              // index into sections()
  uint16_t row = 0;                  // 0-based within the section
  uint16_t number = 0;               // 0-based within the row
  SeatStatus status = SeatStatus::kAvailable;
};

class SeatInventory {
 public:
  struct Section {
    SectionSpec spec;
    int64_t first_seat_index = 0;  // index of its seat (row 0, number 0)
    int64_t first_row_index = 0;   // index of its row 0 in row_available
    int64_t available = 0;         // AVAILABLE seats in the section
  };

  SeatInventory(ScheduleId id, ConcertId concert_id, TimeUs starts_at,
                SeatId first_seat_id, const std::vector<SectionSpec>& sections);

  ScheduleId id() const { return id_; }
  ConcertId concert_id() const { return concert_id_; }
  TimeUs starts_at() const { return starts_at_; }
  SeatId first_seat_id() const { return first_seat_id_; }
  int64_t seat_count() const { return static_cast<int64_t>(seats_.size()); }
  int64_t count(SeatStatus s) const { return counts_[static_cast<int>(s)]; }
  const std::vector<Section>& sections() const { return sections_; }

  bool Contains(SeatId seat) const {
    return seat >= first_seat_id_ && seat < first_seat_id_ + seat_count();
  }
  const Seat& seat(SeatId id) const { return seats_[index(id)]; }
  const Section& section_of(SeatId id) const { return sections_[seat(id).section]; }
  Won price(SeatId id) const { return section_of(id).spec.price; }
  // "A-3-12": section name, 1-based row, 1-based number.
  std::string Label(SeatId id) const;

  // OK when every seat is in this schedule and AVAILABLE; otherwise
  // SEAT_NOT_FOUND or SEAT_UNAVAILABLE naming the first offending seat.
  absl::Status CheckAvailable(std::span<const SeatId> seats) const;
  // Best available: `quantity` adjacent AVAILABLE seats in one row of a
  // section with `grade` (any grade when empty), front rows first, choosing a
  // placement that leaves no single orphan seat in the row when one exists.
  std::optional<std::vector<SeatId>> FindBestAvailable(int64_t quantity,
                                                       absl::string_view grade) const;

  // Status changes; each asserts the transition is legal.
  void Hold(SeatId seat, ReservationId reservation);  // AVAILABLE -> HELD
  void Release(SeatId seat);                          // HELD|SOLD -> AVAILABLE
  void Sell(SeatId seat);                             // HELD -> SOLD

  // Snapshot (snapshot_io.h). The seat map (start time and sections) is
  // written with the schedule's concert; DecodeSeatMap builds the inventory
  // from it, every seat AVAILABLE, after checking the sections against
  // `limits`. `seats_declared` counts the seats of the schedules decoded so
  // far, this one included: each seat takes at least a byte further on, so a
  // count beyond the bytes left is damage, found before the seats are
  // allocated. Returns nullptr when the reader has failed (DATA_LOSS).
  void EncodeSeatMap(SnapshotWriter& w) const;
  static std::unique_ptr<SeatInventory> DecodeSeatMap(SnapshotReader& r, ScheduleId id,
                                                      ConcertId concert_id,
                                                      SeatId first_seat_id,
                                                      const Limits& limits,
                                                      int64_t& seats_declared);
  // The status and holder of every seat, one varint each (0 AVAILABLE,
  // 2 * reservation + 1 if SOLD otherwise), in a later section, once the
  // reservations they name are known: a holder must lie in [1, reservations].
  void EncodeSeats(SnapshotWriter& w) const;
  void DecodeSeats(SnapshotReader& r, int64_t reservations);

  // Feeds the status and holder of every seat to `mix` (for state hashes).
  template <typename Mix>
  void Digest(Mix&& mix) const {
    mix(id_);
    for (const Seat& s : seats_) {
      mix(static_cast<int64_t>(s.status));
      mix(s.reservation_id);
    }
  }

 private:
  size_t index(SeatId id) const { return static_cast<size_t>(id - first_seat_id_); }
  int64_t row_index(const Seat& s) const {
    return sections_[s.section].first_row_index + s.row;
  }
  void SetStatus(Seat& s, SeatStatus to);

  ScheduleId id_;
  ConcertId concert_id_;
  TimeUs starts_at_;
  SeatId first_seat_id_;
  std::vector<Section> sections_;
  std::vector<Seat> seats_;
  std::vector<uint16_t> row_available_;  // AVAILABLE seats per row
  int64_t counts_[3] = {0, 0, 0};
};

}  // namespace boxoffice
