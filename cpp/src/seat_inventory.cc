// SeatInventory: see seat_inventory.h for what it models and why.
#include "boxoffice/seat_inventory.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/errors.h"
#include "boxoffice/limits.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {

SeatInventory::SeatInventory(ScheduleId id, ConcertId concert_id, TimeUs starts_at,
                             SeatId first_seat_id, const std::vector<SectionSpec>& sections)
    : id_(id), concert_id_(concert_id), starts_at_(starts_at), first_seat_id_(first_seat_id) {
  int64_t seat_index = 0;
  int64_t row_index = 0;
  for (size_t s = 0; s < sections.size(); ++s) {
    const SectionSpec& spec = sections[s];
    BOXOFFICE_ASSERT(spec.rows > 0 && spec.rows <= 65535);
    BOXOFFICE_ASSERT(spec.seats_per_row > 0 && spec.seats_per_row <= 65535);
    sections_.push_back(Section{spec, seat_index, row_index, spec.rows * spec.seats_per_row});
    for (int64_t r = 0; r < spec.rows; ++r) {
      row_available_.push_back(static_cast<uint16_t>(spec.seats_per_row));
      for (int64_t n = 0; n < spec.seats_per_row; ++n) {
        Seat seat;
        seat.section = static_cast<uint32_t>(s);
        seat.row = static_cast<uint16_t>(r);
        seat.number = static_cast<uint16_t>(n);
        seats_.push_back(seat);
      }
    }
    seat_index += spec.rows * spec.seats_per_row;
    row_index += spec.rows;
  }
  counts_[static_cast<int>(SeatStatus::kAvailable)] = seat_count();
}

std::string SeatInventory::Label(SeatId id) const {
  const Seat& s = seat(id);
  return absl::StrCat(sections_[s.section].spec.name, "-", s.row + 1, "-", s.number + 1);
}

absl::Status SeatInventory::CheckAvailable(std::span<const SeatId> seats) const {
  for (SeatId id : seats) {
    if (!Contains(id)) {
      return MakeError(ErrorCode::kSeatNotFound,
                       absl::StrCat("seat ", id, " is not a seat of schedule ", id_),
                       {.seat_id = id});
    }
    if (seat(id).status != SeatStatus::kAvailable) {
      return MakeError(ErrorCode::kSeatUnavailable,
                       absl::StrCat("seat ", Label(id), " (", id, ") is ",
                                    ToString(seat(id).status)),
                       {.seat_id = id});
    }
  }
  return absl::OkStatus();
}

std::optional<std::vector<SeatId>> SeatInventory::FindBestAvailable(
    int64_t quantity, absl::string_view grade) const {
  BOXOFFICE_ASSERT(quantity > 0);
  std::optional<std::vector<SeatId>> fallback;
  auto take = [&](int64_t first_index) {
    std::vector<SeatId> out;
    for (int64_t k = 0; k < quantity; ++k) out.push_back(first_seat_id_ + first_index + k);
    return out;
  };
  for (const Section& section : sections_) {
    if (section.available < quantity) continue;  // sold-out sections cost nothing
    if (!grade.empty() && section.spec.grade != grade) continue;
    const int64_t per_row = section.spec.seats_per_row;
    for (int64_t r = 0; r < section.spec.rows; ++r) {
      if (row_available_[static_cast<size_t>(section.first_row_index + r)] < quantity) continue;
      const int64_t base = section.first_seat_index + r * per_row;
      int64_t i = 0;
      while (i < per_row) {
        if (seats_[static_cast<size_t>(base + i)].status != SeatStatus::kAvailable) {
          ++i;
          continue;
        }
        int64_t j = i;
        while (j < per_row && seats_[static_cast<size_t>(base + j)].status == SeatStatus::kAvailable) {
          ++j;
        }
        const int64_t run = j - i;
        if (run >= quantity) {
          // Taking `quantity` from the left end of a run of quantity + 1
          // strands one seat that no pair can ever use: avoid when possible.
          if (run - quantity != 1) return take(base + i);
          if (!fallback.has_value()) fallback = take(base + i);
        }
        i = j;
      }
    }
  }
  return fallback;
}

void SeatInventory::SetStatus(Seat& s, SeatStatus to) {
  --counts_[static_cast<int>(s.status)];
  ++counts_[static_cast<int>(to)];
  uint16_t& row = row_available_[static_cast<size_t>(row_index(s))];
  int64_t& section = sections_[s.section].available;
  if (s.status == SeatStatus::kAvailable) {
    --row;
    --section;
  }
  if (to == SeatStatus::kAvailable) {
    ++row;
    ++section;
  }
  s.status = to;
}

void SeatInventory::Hold(SeatId id, ReservationId reservation) {
  Seat& s = seats_[index(id)];
  BOXOFFICE_ASSERT(s.status == SeatStatus::kAvailable && s.reservation_id == 0);
  BOXOFFICE_ASSERT(reservation > 0);
  SetStatus(s, SeatStatus::kHeld);
  s.reservation_id = reservation;
}

void SeatInventory::Release(SeatId id) {
  Seat& s = seats_[index(id)];
  BOXOFFICE_ASSERT(s.status != SeatStatus::kAvailable && s.reservation_id != 0);
  SetStatus(s, SeatStatus::kAvailable);
  s.reservation_id = 0;
}

void SeatInventory::Sell(SeatId id) {
  Seat& s = seats_[index(id)];
  BOXOFFICE_ASSERT(s.status == SeatStatus::kHeld && s.reservation_id != 0);
  SetStatus(s, SeatStatus::kSold);
}

// --- snapshot ------------------------------------------------------------------------

#if defined(__GLIBCXX__) && defined(__x86_64__)
// Tripwire: a new member must be stored by the snapshot or rebuilt (then update the size).
static_assert(sizeof(SeatInventory) == 128, "new SeatInventory member: add it to the snapshot");
#endif

void SeatInventory::EncodeSeatMap(SnapshotWriter& w) const {
  w.Time(starts_at_, 0);
  w.Count(sections_.size());
  for (const Section& section : sections_) {
    w.Str(section.spec.name);
    w.Int(section.spec.rows);
    w.Int(section.spec.seats_per_row);
    w.Str(section.spec.grade);
    w.Int(section.spec.price);
  }
}

std::unique_ptr<SeatInventory> SeatInventory::DecodeSeatMap(SnapshotReader& r, ScheduleId id,
                                                            ConcertId concert_id,
                                                            SeatId first_seat_id,
                                                            const Limits& limits,
                                                            int64_t& seats_declared) {
  const TimeUs starts_at = r.Time("starts_at", 0);
  const size_t sections_n = r.Count("sections", 7);
  r.Check(sections_n >= 1, "a schedule without sections");
  std::vector<SectionSpec> sections(sections_n);
  int64_t seats = 0;
  for (SectionSpec& s : sections) {
    s.name = r.Str("section name");
    // The constructor keeps rows and seats per row in 16 bits.
    s.rows = r.Int("rows", 1, std::min<int64_t>(65535, limits.rows_per_section_max));
    s.seats_per_row =
        r.Int("seats_per_row", 1, std::min<int64_t>(65535, limits.seats_per_row_max));
    s.grade = r.Str("grade");
    s.price = r.Int("price", 1, std::max<int64_t>(1, limits.price_max));
    r.Check(!s.name.empty() && !s.grade.empty(), "a section without a name or grade");
    if (!r.ok()) return nullptr;
    seats += s.rows * s.seats_per_row;  // <= 2^32 each, no overflow
  }
  r.Check(seats <= limits.seats_per_schedule_max, "a schedule has too many seats");
  seats_declared += seats;
  if (!r.Check(seats_declared <= static_cast<int64_t>(r.remaining()),
               "more seats than bytes left")) {
    return nullptr;
  }
  return std::make_unique<SeatInventory>(id, concert_id, starts_at, first_seat_id, sections);
}

void SeatInventory::EncodeSeats(SnapshotWriter& w) const {
  for (const Seat& seat : seats_) {
    if (seat.status == SeatStatus::kAvailable) {
      w.Var(0);
    } else {
      w.Var(static_cast<uint64_t>(seat.reservation_id) * 2 +
            (seat.status == SeatStatus::kSold ? 1 : 0));
    }
  }
}

void SeatInventory::DecodeSeats(SnapshotReader& r, int64_t reservations) {
  for (SeatId id = first_seat_id_; id < first_seat_id_ + seat_count(); ++id) {
    const uint64_t v = r.Var();
    if (!r.ok()) return;
    if (v == 0) continue;
    if (!r.Check(v >= 2 && (v >> 1) <= static_cast<uint64_t>(reservations),
                 absl::StrCat("seat ", id, " names no reservation"))) {
      return;
    }
    // A fresh seat and a holder >= 1: Hold's and Sell's preconditions hold.
    Hold(id, static_cast<ReservationId>(v >> 1));
    if ((v & 1) != 0) Sell(id);
  }
}

}  // namespace boxoffice
