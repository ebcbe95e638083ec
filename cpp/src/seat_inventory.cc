// SeatInventory: see seat_inventory.h for what it models and why.
#include "boxoffice/seat_inventory.h"

#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/errors.h"

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

}  // namespace boxoffice
