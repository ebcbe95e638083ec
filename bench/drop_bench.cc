// drop_bench: commands per second of a simple in-process ticket drop, from C++.
//
// N users are created and funded, all join one concert at once (the first
// `capacity` are admitted), and then, round by round, every ACTIVE user holds
// 1-4 best-available seats of a grade, pays (4 in 5) or cancels, and leaves,
// which admits the next users; a sample of WAITING users polls each round.
// Virtual time advances one second per round. The same drop is run twice:
// through Engine::ApplyBatch (one call per round) and through the single
// calls (one lock per command). Prints commands, seconds and commands/s.
//
//   build/bench/drop_bench [users] [seats]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "boxoffice/engine.h"

using namespace boxoffice;  // NOLINT: a benchmark program

namespace {

constexpr int64_t kCapacity = 2'000;
constexpr int64_t kSeatsPerRow = 50;

ConcertSpec DropConcert(int64_t seats) {
  ConcertSpec spec;
  spec.title = "drop";
  ScheduleSpec schedule;
  schedule.starts_at = 1'900'000'000 * kMicrosPerSecond;
  const int64_t rows = seats / kSeatsPerRow;
  schedule.sections.push_back({"VIP", rows / 5, kSeatsPerRow, "VIP", 165'000});
  schedule.sections.push_back({"R", rows * 2 / 5, kSeatsPerRow, "R", 132'000});
  schedule.sections.push_back({"S", rows - rows / 5 - rows * 2 / 5, kSeatsPerRow, "S", 99'000});
  spec.schedules.push_back(schedule);
  spec.sale.queue_capacity = kCapacity;
  spec.sale.abandon_timeout_us = 3600 * kMicrosPerSecond;
  return spec;
}

struct Result {
  int64_t commands = 0;
  double seconds = 0;
  int64_t sold = 0;
};

BatchCommand Cmd(BatchOp op, TimeUs now, int64_t user = 0, int64_t token = 0,
                 int64_t target = 0, int64_t arg = 0) {
  BatchCommand c;
  c.op = static_cast<uint8_t>(op);
  c.now_us = now;
  c.user = user;
  c.token = token;
  c.target = target;
  c.arg = arg;
  return c;
}

// Runs the drop through ApplyBatch; `single` applies each command alone.
Result RunDrop(int64_t users, int64_t seats, bool single) {
  Limits limits;
  limits.event_retention_max = 1'000'000;
  Engine engine(EngineConfig{limits, 7});
  const auto concert = engine.CreateConcert(DropConcert(seats), 0);
  if (!concert.ok()) std::abort();
  const ScheduleId schedule = concert->schedules[0].id;
  std::vector<BatchCommand> cmds;
  std::vector<BatchResult> res;
  Result out;
  auto apply = [&] {
    res.assign(cmds.size(), BatchResult{});
    if (single) {
      for (size_t i = 0; i < cmds.size(); ++i) {
        engine.ApplyBatch(std::span(&cmds[i], 1), std::span(&res[i], 1));
      }
    } else {
      engine.ApplyBatch(cmds, res);
    }
    out.commands += static_cast<int64_t>(cmds.size());
  };
  const auto start = std::chrono::steady_clock::now();
  TimeUs now = kMicrosPerSecond;
  cmds.clear();
  for (int64_t u = 0; u < users; ++u) cmds.push_back(Cmd(BatchOp::kCreateUser, now));
  for (int64_t u = 1; u <= users; ++u) cmds.push_back(Cmd(BatchOp::kCharge, now, u, 0, 0, 1'000'000));
  for (int64_t u = 1; u <= users; ++u) cmds.push_back(Cmd(BatchOp::kJoin, now, u, 0, concert->id));
  apply();
  // Users join in order, so user u holds token u and is admitted in order.
  int64_t next = 1;
  while (next <= users) {
    now += kMicrosPerSecond;
    const int64_t last = std::min(users, next + kCapacity - 1);
    cmds.clear();
    for (int64_t u = next; u <= last; ++u) {
      BatchCommand c = Cmd(BatchOp::kHoldBest, now, u, u, schedule);
      c.quantity = static_cast<uint16_t>(1 + u % 4);
      c.grade = static_cast<uint8_t>(1 + u % 3);
      cmds.push_back(c);
    }
    apply();
    std::vector<BatchCommand> follow;
    for (int64_t u = next; u <= last; ++u) {
      const BatchResult& h = res[static_cast<size_t>(u - next)];
      if (h.code == 0 && u % 5 != 0) {
        follow.push_back(Cmd(BatchOp::kPay, now, u, u, h.id));
      } else {
        if (h.code == 0) follow.push_back(Cmd(BatchOp::kCancel, now, u, 0, h.id));
        follow.push_back(Cmd(BatchOp::kLeave, now, u, u));
      }
    }
    for (int64_t k = 0; k < 100 && last + 1 + k * 97 <= users; ++k) {
      const int64_t u = last + 1 + k * 97;
      follow.push_back(Cmd(BatchOp::kStatus, now, u, u));
    }
    cmds.swap(follow);
    apply();
    next = last + 1;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.sold = engine.Stats(concert->id, now)->seats_sold;
  if (!engine.CheckInvariants().ok()) std::abort();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t users = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  const int64_t seats = argc > 2 ? std::atoll(argv[2]) : 50'000;
  std::printf("drop: %lld users, %lld seats, capacity %lld\n", static_cast<long long>(users),
              static_cast<long long>(seats), static_cast<long long>(kCapacity));
  std::printf("%-22s %12s %10s %14s %8s\n", "mode", "commands", "seconds", "commands/s", "sold");
  for (bool single : {false, true}) {
    const Result r = RunDrop(users, seats, single);
    std::printf("%-22s %12lld %10.3f %14.0f %8lld\n",
                single ? "C++ one call/command" : "C++ ApplyBatch", static_cast<long long>(r.commands),
                r.seconds, static_cast<double>(r.commands) / r.seconds,
                static_cast<long long>(r.sold));
  }
  return 0;
}
