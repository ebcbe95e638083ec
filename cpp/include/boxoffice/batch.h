// The batch interface: many commands in one call, as fixed-size records.
//
// Simulations and replays build an array of `BatchCommand` (in Python, a NumPy
// structured array with the same layout, `boxoffice.batch.COMMAND_DTYPE`) and
// get one `BatchResult` per command. Each record becomes a `Command` (command.h)
// applied by `Engine::Apply`'s code; only the argument passing differs.
//
// `op` is an `Op` value (command.h), fields by op:
//   ADVANCE                                          -> -
//   CREATE_USER                                      -> id = user
//   JOIN     user, target = concert                  -> id = token, state, value = position
//   STATUS, LEAVE  user, token                       -> id = token, state, value = position
//   GATE     user, token, target = concert           -> id = token, state, value = position
//   HOLD     user, token, target = schedule, quantity, and
//              arg != 0: seats arg .. arg + quantity - 1 (explicit seats), or
//              arg == 0: best-available, grade 0 = any, k = the concert's k-th grade
//                                                    -> id = reservation, state, value = amount
//   RELEASE_SEAT  user, target = reservation, arg = seat   -> id, state, value = amount
//   CANCEL, REFUND  user, target = reservation       -> id, state, value = amount
//   CHARGE   user, arg = amount                      -> id = history entry, value = balance
//   PAY      user, token, target = reservation       -> id = payment, state, value = amount
// CREATE_CONCERT has no batch form (INVALID_ARGUMENT).
#pragma once

#include <cstdint>

namespace boxoffice {

struct BatchCommand {
  uint8_t op = 0;         // Op (command.h)
  uint8_t grade = 0;      // HOLD best-available: 0 = any grade, k = concert grade k (1-based)
  uint16_t quantity = 0;  // HOLD
  uint32_t reserved = 0;
  int64_t now_us = 0;     // microseconds since the Unix epoch
  int64_t user = 0;
  int64_t token = 0;
  int64_t target = 0;     // concert, schedule or reservation, by op
  int64_t arg = 0;        // first seat, seat or amount, by op
};
static_assert(sizeof(BatchCommand) == 48);

struct BatchResult {
  uint16_t code = 0;  // ErrorCode; 0 = OK
  uint8_t status = 0;  // TokenStatus or ReservationStatus, by op
  uint8_t reserved0 = 0;
  uint32_t reserved1 = 0;
  int64_t id = 0;
  int64_t value = 0;
};
static_assert(sizeof(BatchResult) == 24);

}  // namespace boxoffice
