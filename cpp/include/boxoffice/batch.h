// The batch interface: many commands in one call, as fixed-size records.
//
// Simulations and replays build an array of `BatchCommand` (in Python, a NumPy
// structured array with the same layout, `boxoffice.batch.COMMAND_DTYPE`) and
// get one `BatchResult` per command. Each command goes through the very same
// Engine code as the single calls; only the argument passing differs.
#pragma once

#include <cstdint>

namespace boxoffice {

enum class BatchOp : uint8_t {
  kAdvance = 0,      // advance time to now_us
  kCreateUser = 1,   // -> id = user
  kJoin = 2,         // user, target = concert -> id = token, state, value = position
  kStatus = 3,       // user, token -> state, value = position
  kLeave = 4,        // user, token -> state
  kHold = 5,         // user, token, target = schedule, arg = first seat,
                     // quantity = seats arg .. arg+quantity-1 -> id = reservation, value = amount
  kHoldBest = 6,     // user, token, target = schedule, quantity, grade (0 = any,
                     // k = the concert's k-th grade) -> id = reservation, value = amount
  kReleaseSeat = 7,  // user, target = reservation, arg = seat -> state
  kCancel = 8,       // user, target = reservation -> state
  kCharge = 9,       // user, arg = amount -> id = entry, value = balance
  kPay = 10,         // user, token, target = reservation -> id = payment, value = amount
  kRefund = 11,      // user, target = reservation -> value = amount
  kCount
};

struct BatchCommand {
  uint8_t op = 0;         // BatchOp
  uint8_t grade = 0;      // kHoldBest: 0 = any grade, k = concert grade k (1-based)
  uint16_t quantity = 0;  // kHold, kHoldBest
  uint32_t reserved = 0;
  int64_t now_us = 0;     // microseconds since the Unix epoch
  int64_t user = 0;
  int64_t token = 0;
  int64_t target = 0;     // concert, schedule or reservation, by op
  int64_t arg = 0;        // seat or amount, by op
};
static_assert(sizeof(BatchCommand) == 48);

struct BatchResult {
  uint16_t code = 0;  // ErrorCode; 0 = OK
  uint8_t state = 0;  // TokenState or ReservationStatus, by op
  uint8_t reserved0 = 0;
  uint32_t reserved1 = 0;
  int64_t id = 0;
  int64_t value = 0;
};
static_assert(sizeof(BatchResult) == 24);

}  // namespace boxoffice
