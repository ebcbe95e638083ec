// core_bench: the engine's own speed and memory, from C++, on the standard workload.
//
// Reads a workload written by bench/workload.py (the `.npy` command array in the
// BatchCommand layout and the `.concert` description), then, single-threaded:
//   - replays every command through Engine::ApplyBatch in chunks of 65,536
//     (commands/s), and checks the engine ends in the recorded state_hash;
//   - replays them again with one ApplyBatch call per command (one lock, one
//     dispatch per command: what a server thread pays per request);
//   - measures memory with mallinfo2 (bytes the allocator handed out): a
//     200,000-seat schedule (bytes per seat), and 1,000,000 users joining one
//     queue with capacity 1 (bytes per WAITING user, the user accounts excluded).
// Prints a table and, last, one `RESULT {...}` JSON line for bench/run.py.
//
//   build/bench/core_bench build/workload/drop-1m [--repeat N]
#include <malloc.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boxoffice/engine.h"

using namespace boxoffice;  // NOLINT: a benchmark program

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "core_bench: %s\n", what.c_str());
  std::exit(1);
}

struct Workload {
  EngineConfig config;
  ConcertSpec concert;
  TimeUs created_at_us = 0;
  uint64_t state_hash = 0;
  std::vector<BatchCommand> commands;
};

// The `.concert` file: `key value` lines (bench/workload.py writes it).
void ReadConcert(const std::string& path, Workload& w) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  ScheduleSpec schedule;
  SaleSettings& sale = w.concert.sale;
  std::string line;
  auto num = [](std::istringstream& s) {
    long long v = 0;
    s >> v;
    return static_cast<int64_t>(v);
  };
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string key;
    s >> key;
    std::string rest;
    std::getline(s >> std::ws, rest);
    s.clear();
    s.str(rest);
    if (key == "title") w.concert.title = rest;
    else if (key == "artist") w.concert.artist = rest;
    else if (key == "venue") w.concert.venue = rest;
    else if (key == "seed") w.config.seed = static_cast<uint64_t>(num(s));
    else if (key == "event_retention_max") w.config.limits.event_retention_max = num(s);
    else if (key == "state_hash") s >> w.state_hash;
    else if (key == "created_at_us") w.created_at_us = num(s);
    else if (key == "starts_at_us") schedule.starts_at = num(s);
    else if (key == "opens_at_us") { const int64_t v = num(s); sale.opens_at = v < 0 ? kNever : v; }
    else if (key == "queue_capacity") sale.queue_capacity = num(s);
    else if (key == "admission_per_minute") { const int64_t v = num(s); sale.admission_per_minute = v < 0 ? kNoLimit : v; }
    else if (key == "session_ttl_us") sale.session_ttl_us = num(s);
    else if (key == "hold_ttl_us") sale.hold_ttl_us = num(s);
    else if (key == "max_seats_per_reservation") sale.max_seats_per_reservation = num(s);
    else if (key == "max_seats_per_user") { const int64_t v = num(s); sale.max_seats_per_user = v < 0 ? kNoLimit : v; }
    else if (key == "release_on_payment_failure") sale.release_on_payment_failure = num(s) != 0;
    else if (key == "abandon_timeout_us") sale.abandon_timeout_us = num(s);
    else if (key == "poll_interval_us") sale.poll_interval_us = num(s);
    else if (key == "section") {
      SectionSpec sec;
      long long rows = 0, per_row = 0, price = 0;
      s >> sec.name >> rows >> per_row >> sec.grade >> price;
      sec.rows = rows;
      sec.seats_per_row = per_row;
      sec.price = price;
      schedule.sections.push_back(sec);
    } else if (!key.empty()) {
      Die("unknown key in " + path + ": " + key);
    }
  }
  w.concert.schedules.push_back(schedule);
}

// A NumPy .npy file (format 1.0) holding one 1-D array of 48-byte records.
void ReadCommands(const std::string& path, Workload& w) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  char magic[8];
  in.read(magic, 8);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0 || magic[6] != 1) Die(path + " is not a .npy v1 file");
  uint16_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 2);
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  const size_t shape = header.find("'shape': (");
  if (shape == std::string::npos) Die("no shape in " + path);
  const long long n = std::atoll(header.c_str() + shape + 10);
  w.commands.resize(static_cast<size_t>(n));
  in.read(reinterpret_cast<char*>(w.commands.data()),
          static_cast<std::streamsize>(n * static_cast<long long>(sizeof(BatchCommand))));
  if (!in) Die(path + " is shorter than its header says");
}

struct Run {
  double seconds = 0;
  uint64_t hash = 0;
};

Run Replay(const Workload& w, size_t chunk) {
  Engine engine(w.config);
  if (!engine.CreateConcert(w.concert, w.created_at_us).ok()) Die("CreateConcert failed");
  std::vector<BatchResult> results(chunk);
  const auto start = std::chrono::steady_clock::now();
  const size_t n = w.commands.size();
  for (size_t i = 0; i < n; i += chunk) {
    const size_t k = std::min(chunk, n - i);
    engine.ApplyBatch(std::span(w.commands.data() + i, k), std::span(results.data(), k));
  }
  Run r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.hash = engine.StateHash();
  if (!engine.CheckInvariants().ok()) Die("an invariant is broken after the replay");
  return r;
}

size_t Allocated() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;  // small blocks + mmap-ed large ones
}

// Bytes per seat of a 200,000-seat schedule (the engine's seats_per_schedule_max).
double BytesPerSeat() {
  Engine engine;
  ConcertSpec spec;
  spec.title = "memory";
  ScheduleSpec schedule;
  schedule.starts_at = 2'000'000'000 * kMicrosPerSecond;
  for (int s = 0; s < 4; ++s) {
    schedule.sections.push_back({absl::StrCat("S", s), 1000, 50, absl::StrCat("G", s), 100'000});
  }
  spec.schedules.push_back(schedule);
  const size_t before = Allocated();
  if (!engine.CreateConcert(spec, 0).ok()) Die("CreateConcert failed");
  return static_cast<double>(Allocated() - before) / 200'000.0;
}

// Bytes per WAITING user: n users join a queue of capacity 1 (the accounts are
// created before the measurement starts).
double BytesPerQueuedUser(int64_t n) {
  Limits limits;
  limits.event_retention_max = 0;  // the in-memory event tail is not the queue's
  Engine engine(EngineConfig{limits, 0});
  ConcertSpec spec;
  spec.title = "memory";
  ScheduleSpec schedule;
  schedule.starts_at = 2'000'000'000 * kMicrosPerSecond;
  schedule.sections.push_back({"A", 1, 10, "R", 100'000});
  spec.schedules.push_back(schedule);
  spec.sale.queue_capacity = 1;
  spec.sale.abandon_timeout_us = 3600 * kMicrosPerSecond;
  const auto concert = engine.CreateConcert(spec, 0);
  if (!concert.ok()) Die("CreateConcert failed");
  for (int64_t u = 0; u < n; ++u) (void)engine.CreateUser(1);
  const size_t before = Allocated();
  for (int64_t u = 1; u <= n; ++u) {
    if (!engine.JoinQueue(u, concert->id, 1).ok()) Die("JoinQueue failed");
  }
  return static_cast<double>(Allocated() - before) / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: core_bench <workload base path> [--repeat N]");
  const std::string base = argv[1];
  int repeat = 1;
  if (argc >= 4 && std::strcmp(argv[2], "--repeat") == 0) repeat = std::atoi(argv[3]);
  Workload w;
  ReadConcert(base + ".concert", w);
  ReadCommands(base + ".npy", w);
  const auto n = static_cast<double>(w.commands.size());
  std::printf("workload %s: %zu commands\n", base.c_str(), w.commands.size());
  std::printf("%-28s %12s %10s %14s %9s\n", "mode", "commands", "seconds", "commands/s", "ns/cmd");
  double best_batch = 0, best_single = 0;
  for (int i = 0; i < repeat; ++i) {
    for (size_t chunk : {size_t{65'536}, size_t{1}}) {
      const Run r = Replay(w, chunk);
      if (r.hash != w.state_hash) {
        Die("the replay ended in state_hash " + std::to_string(r.hash) + ", expected " +
            std::to_string(w.state_hash));
      }
      const double rate = n / r.seconds;
      std::printf("%-28s %12.0f %10.3f %14.0f %9.1f\n",
                  chunk == 1 ? "C++ one call per command" : "C++ ApplyBatch (65,536)", n,
                  r.seconds, rate, 1e9 / rate);
      (chunk == 1 ? best_single : best_batch) = std::max(chunk == 1 ? best_single : best_batch, rate);
    }
  }
  const double per_seat = BytesPerSeat();
  const double per_user = BytesPerQueuedUser(1'000'000);
  std::printf("memory: %.1f B per seat (200,000-seat schedule), %.1f B per WAITING user (1,000,000 in one queue)\n",
              per_seat, per_user);
  std::printf("RESULT {\"commands\": %.0f, \"batch_per_s\": %.0f, \"single_per_s\": %.0f, "
              "\"bytes_per_seat\": %.2f, \"bytes_per_queued_user\": %.2f}\n",
              n, best_batch, best_single, per_seat, per_user);
  return 0;
}
