// Tests of Journal: records survive close and reopen in a real SQLite file in
// every durability mode; sequence numbers continue; many threads appending
// and waiting lose and duplicate nothing; snapshots and compaction; one writer
// per store (also across processes); clear errors for missing or unusable
// directories, newer format versions and foreign files; damage (a corrupt
// last or middle group, a truncated WAL or database file, a SIGKILLed writer)
// is recovered from or reported, never replayed half and never a crash.
#include "boxoffice/journal.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace boxoffice {
namespace {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/boxoffice-journal-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A deterministic record for `seq`: varied lengths (0 to a few hundred bytes,
// some over 127 so the length varint takes two bytes) and every byte value.
std::string Payload(Seq seq) {
  if (seq % 97 == 0) return "";
  std::string s = absl::StrCat("record-", seq, ":");
  const auto n = static_cast<size_t>((seq * 37) % 300);
  for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>((seq + static_cast<Seq>(i)) & 0xff));
  return s;
}

JournalOptions Options(const std::string& path, Durability d = Durability::kFull) {
  JournalOptions o;
  o.path = path;
  o.durability = d;
  return o;
}

std::unique_ptr<Journal> MustOpen(const JournalOptions& o) {
  auto j = Journal::Open(o);
  INFO(j.status().ToString());
  REQUIRE(j.ok());
  return std::move(*j);
}

struct ReadResult {
  absl::Status status;
  std::vector<std::pair<Seq, std::string>> records;
  ReadStats stats;
};

ReadResult ReadAll(Journal& j, Seq after = 0) {
  ReadResult r;
  r.status = j.Read(
      after,
      [&](Seq seq, absl::string_view rec) {
        r.records.emplace_back(seq, std::string(rec));
        return absl::OkStatus();
      },
      &r.stats);
  return r;
}

// Every record is Payload(seq), and the seqs are exactly first..last.
void CheckPayloadRange(const std::vector<std::pair<Seq, std::string>>& records, Seq first,
                       Seq last) {
  REQUIRE(static_cast<Seq>(records.size()) == (last >= first ? last - first + 1 : 0));
  for (size_t i = 0; i < records.size(); ++i) {
    const Seq want = first + static_cast<Seq>(i);
    if (records[i].first != want || records[i].second != Payload(want)) {
      FAIL("record " << i << " has seq " << records[i].first << ", want " << want
                     << (records[i].first == want ? " (payload differs)" : ""));
    }
  }
}

Seq AppendPayloads(Journal& j, Seq count) {
  Seq last = 0;
  for (Seq i = 0; i < count; ++i) {
    const Seq want = j.appended_seq() + 1;
    last = j.Append(Payload(want));
    REQUIRE(last == want);
  }
  return last;
}

// A separate SQLite connection, as an analyst or an attacker would use.
class Sql {
 public:
  explicit Sql(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  }
  ~Sql() { sqlite3_close(db_); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }
  int64_t Int(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  }
  std::string Blob(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s, 0));
    std::string v(p, static_cast<size_t>(sqlite3_column_bytes(s, 0)));
    sqlite3_finalize(s);
    return v;
  }
  void SetBlob(const std::string& sql, const std::string& blob) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    sqlite3_bind_blob(s, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    REQUIRE(sqlite3_step(s) == SQLITE_DONE);
    sqlite3_finalize(s);
  }

 private:
  sqlite3* db_ = nullptr;
};

// Redirects fd 2 to a file while alive, so expected log lines neither reach
// the test output nor go unchecked.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    char tmpl[] = "/tmp/boxoffice-stderr-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    REQUIRE(fd_ >= 0);
    path_ = tmpl;
    saved_ = ::dup(2);
    REQUIRE(::dup2(fd_, 2) == 2);
  }
  ~StderrCapture() { Stop(); }
  std::string Stop() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, 2);
      ::close(saved_);
      ::close(fd_);
      saved_ = -1;
      std::ifstream in(path_);
      std::stringstream ss;
      ss << in.rdbuf();
      text_ = ss.str();
      ::unlink(path_.c_str());
    }
    return text_;
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
  std::string path_;
  std::string text_;
};

// Runs this test binary again as a child process that executes only the
// hidden test case "journal child process" with the given mode; its output
// goes to `log`. Returns the wait status.
int RunChild(const std::string& mode, const std::string& path, const std::string& log) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("BOXOFFICE_JOURNAL_CHILD_MODE=" + mode);
  env_strings.push_back("BOXOFFICE_JOURNAL_CHILD_PATH=" + path);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string name = "journal child process";
  std::vector<char*> argv = {exe.data(), name.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The body of the child processes; does nothing unless run by RunChild.
TEST_CASE("journal child process", "[.journal_child]") {
  const char* mode_env = std::getenv("BOXOFFICE_JOURNAL_CHILD_MODE");
  const char* path_env = std::getenv("BOXOFFICE_JOURNAL_CHILD_PATH");
  if (mode_env == nullptr || path_env == nullptr) return;
  const std::string mode = mode_env;
  const std::string path = path_env;
  if (mode == "expect_locked") {
    auto j = Journal::Open(Options(path));
    INFO(j.status().ToString());
    REQUIRE(j.status().code() == absl::StatusCode::kFailedPrecondition);
    REQUIRE(absl::StrContains(j.status().message(), "already open for writing"));
  } else if (mode == "expect_ok") {
    auto j = Journal::Open(Options(path));
    INFO(j.status().ToString());
    REQUIRE(j.ok());
    REQUIRE((*j)->Close().ok());
  } else if (mode == "crash") {
    // Acknowledges batches (WaitDurable, then the seq goes to path.acked),
    // leaves a last batch in flight and dies by SIGKILL without closing.
    auto j = MustOpen(Options(path, Durability::kFull));
    const int ack_fd = ::open((path + ".acked").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(ack_fd >= 0);
    for (int batch = 0; batch < 40; ++batch) {
      const Seq last = AppendPayloads(*j, 50);
      REQUIRE(j->WaitDurable(last).ok());
      const std::string line = absl::StrCat(last, "\n");
      REQUIRE(::write(ack_fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    }
    AppendPayloads(*j, 500);
    ::kill(::getpid(), SIGKILL);
  } else {
    FAIL("unknown child mode " << mode);
  }
}

TEST_CASE("durability names round-trip", "[journal]") {
  for (auto d : {Durability::kFull, Durability::kNormal, Durability::kOff}) {
    auto parsed = ParseDurability(ToString(d));
    REQUIRE(parsed.ok());
    CHECK(*parsed == d);
  }
  CHECK(ParseDurability("fsync").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("options are validated", "[journal]") {
  TempDir dir;
  CHECK(Journal::Open(Options("")).status().code() == absl::StatusCode::kInvalidArgument);
  JournalOptions o = Options(dir.File("j.db"));
  o.group_records_max = 0;
  CHECK(Journal::Open(o).status().code() == absl::StatusCode::kInvalidArgument);
  o = Options(dir.File("j.db"));
  o.group_bytes_max = 0;
  CHECK(Journal::Open(o).status().code() == absl::StatusCode::kInvalidArgument);
  o.group_bytes_max = int64_t{1} << 40;
  CHECK(Journal::Open(o).status().code() == absl::StatusCode::kInvalidArgument);
  o = Options(dir.File("j.db"));
  o.group_commit_interval = absl::Microseconds(-1);
  CHECK(Journal::Open(o).status().code() == absl::StatusCode::kInvalidArgument);
  o.group_commit_interval = absl::Seconds(1) + absl::Nanoseconds(1);
  CHECK(Journal::Open(o).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(fs::exists(dir.File("j.db")));
}

TEST_CASE("the group commit interval spaces group commits; concurrent writers share them",
          "[journal]") {
  // 8 threads each append and wait, 100 times: with commits at least 10 ms apart, every
  // group holds what all of them appended meanwhile.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  const absl::Duration interval = absl::Milliseconds(10);
  TempDir dir;
  const std::string path = dir.File("spaced.db");
  JournalOptions o = Options(path);
  o.group_commit_interval = interval;
  std::atomic<int64_t> failures{0};
  const auto start = std::chrono::steady_clock::now();  // the clock the writer spaces by
  {
    auto j = MustOpen(o);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const Seq seq = j->Append(absl::StrCat("thread ", t, " record ", i));
          if (!j->WaitDurable(seq).ok()) failures.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(j->Close().ok());
  }
  const absl::Duration elapsed = absl::FromChrono(std::chrono::steady_clock::now() - start);
  CHECK(failures.load() == 0);
  Sql sql(path);
  const int64_t groups = sql.Int("SELECT count(*) FROM journal_groups");
  INFO(groups << " groups in " << absl::FormatDuration(elapsed));
  CHECK(sql.Int("SELECT sum(record_count) FROM journal_groups") == kThreads * kPerThread);
  // Each commit starts at least one interval after the one before (the first at once).
  CHECK(groups <= elapsed / interval + 1);
  CHECK(groups >= kPerThread);  // a thread's next record waits for its last one
}

TEST_CASE("the group commit interval delays neither the first group, nor Close, nor a snapshot, "
          "nor a full group",
          "[journal]") {
  // The interval is 1 s: a wait for it would show, beside an fsync's milliseconds.
  const absl::Duration waited_out = absl::Milliseconds(800);
  TempDir dir;
  JournalOptions o = Options(dir.File("first.db"));
  o.group_commit_interval = absl::Seconds(1);
  o.group_records_max = 4;
  auto j = MustOpen(o);
  absl::Time start = absl::Now();
  const Seq first = j->Append("first");
  REQUIRE(j->WaitDurable(first).ok());
  CHECK(absl::Now() - start < waited_out);  // no commit before it: written at once

  // Within the interval, a group of 4 fills and a fifth record starts the next group: the
  // full one is written at once, the new one waits.
  start = absl::Now();
  Seq last = 0;
  for (int i = 0; i < 5; ++i) last = j->Append(absl::StrCat("record ", i));
  REQUIRE(j->WaitDurable(last - 1).ok());
  CHECK(absl::Now() - start < waited_out);
  absl::StatusOr<bool> durable = j->PollDurable(last);
  REQUIRE(durable.ok());
  CHECK_FALSE(*durable);

  // A snapshot waits for its seq without waiting out the interval (a store's Close takes one).
  start = absl::Now();
  REQUIRE(j->SaveSnapshot(last, "state").ok());
  CHECK(absl::Now() - start < waited_out);

  const Seq after = j->Append("after");  // within the interval again
  start = absl::Now();
  REQUIRE(j->Close().ok());  // writes it now rather than at the interval's end
  CHECK(absl::Now() - start < waited_out);
  durable = j->PollDurable(after);
  REQUIRE(durable.ok());
  CHECK(*durable);
}

TEST_CASE("records round-trip across close and reopen; seqs continue", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("store.db");
  {
    auto j = MustOpen(Options(path));
    CHECK(j->appended_seq() == 0);
    CHECK(j->durable_seq() == 0);
    CHECK(j->WaitDurable(0).ok());
    const Seq last = AppendPayloads(*j, 500);
    CHECK(last == 500);
    // A record as big as a group may be: alone in its group.
    const std::string big(JournalOptions().group_bytes_max - 8, 'x');
    CHECK(j->Append(big) == 501);
    REQUIRE(j->WaitDurable(501).ok());
    CHECK(j->durable_seq() == 501);
    CHECK(j->appended_seq() == 501);
    ReadResult r = ReadAll(*j);
    REQUIRE(r.status.ok());
    REQUIRE(r.records.size() == 501);
    r.records.pop_back();
    CheckPayloadRange(r.records, 1, 500);
    REQUIRE(j->Close().ok());
    CHECK(j->Close().ok());  // idempotent
    CHECK(j->Read(0, [](Seq, absl::string_view) { return absl::OkStatus(); }).code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  CHECK(fs::exists(path));
  {
    auto j = MustOpen(Options(path));
    CHECK(j->appended_seq() == 501);
    CHECK(j->durable_seq() == 501);
    ReadResult r = ReadAll(*j);
    REQUIRE(r.status.ok());
    CHECK(r.stats.records_read == 501);
    CHECK(r.stats.last_seq == 501);
    CHECK(r.stats.torn_groups_skipped == 0);
    CHECK(static_cast<int64_t>(r.records.back().second.size()) ==
          JournalOptions().group_bytes_max - 8);

    // Reading after a seq starts inside a group.
    r = ReadAll(*j, 250);
    REQUIRE(r.status.ok());
    REQUIRE(r.records.size() == 251);
    r.records.pop_back();
    CheckPayloadRange(r.records, 251, 500);
    r = ReadAll(*j, 501);
    CHECK(r.status.ok());
    CHECK(r.records.empty());
    CHECK(r.stats.last_seq == 501);
    CHECK(j->Read(-1, [](Seq, absl::string_view) { return absl::OkStatus(); }).code() ==
          absl::StatusCode::kInvalidArgument);

    // The callback's error stops the read and is returned.
    int64_t calls = 0;
    ReadStats stats;
    const absl::Status s = j->Read(
        0,
        [&](Seq seq, absl::string_view) {
          ++calls;
          return seq == 5 ? absl::CancelledError("enough") : absl::OkStatus();
        },
        &stats);
    CHECK(s.code() == absl::StatusCode::kCancelled);
    CHECK(calls == 5);
    CHECK(stats.records_read == 4);

    CHECK(j->Append("after reopen") == 502);
    REQUIRE(j->WaitDurable(502).ok());
  }  // the destructor closes
  {
    auto j = MustOpen(Options(path));
    CHECK(j->appended_seq() == 502);
    ReadResult r = ReadAll(*j, 501);
    REQUIRE(r.status.ok());
    REQUIRE(r.records.size() == 1);
    CHECK(r.records[0] == std::make_pair(Seq{502}, std::string("after reopen")));
  }
}

TEST_CASE("every durability mode commits and reads back", "[journal]") {
  for (auto mode : {Durability::kFull, Durability::kNormal, Durability::kOff}) {
    INFO("durability " << ToString(mode));
    TempDir dir;
    const std::string path = dir.File("mode.db");
    {
      auto j = MustOpen(Options(path, mode));
      CHECK(j->durability() == mode);
      for (int batch = 0; batch < 10; ++batch) {
        const Seq last = AppendPayloads(*j, 100);
        REQUIRE(j->WaitDurable(last).ok());
        CHECK(j->durable_seq() >= last);
      }
      REQUIRE(j->Close().ok());
    }
    Sql sql(path);
    CHECK(sql.Int("SELECT sum(record_count) FROM journal_groups") == 1000);
    auto j = MustOpen(Options(path, mode));
    CHECK(j->appended_seq() == 1000);
    ReadResult r = ReadAll(*j);
    REQUIRE(r.status.ok());
    CheckPayloadRange(r.records, 1, 1000);
  }
}

TEST_CASE("the WAL stays bounded under a stream of small groups", "[journal]") {
  // Many small groups, each waited for (as a server's requests are): about 20 MB of WAL
  // frames if nothing were copied back. SQLite's automatic checkpoint in the writer copies
  // the WAL into the database every 1,000 frames and the WAL starts again from its start.
  // (A checkpointer beside the writer was tried for the hold p99: a WAL that is never all
  // copied while writes go on is never restarted, and it grew to 28 MB here.)
  TempDir dir;
  const std::string path = dir.File("wal.db");
  auto j = MustOpen(Options(path, Durability::kNormal));
  int64_t wal_max = 0;
  for (int group = 0; group < 5'000; ++group) {
    const Seq last = AppendPayloads(*j, 4);
    REQUIRE(j->WaitDurable(last).ok());
    struct stat st {};
    if (::stat((path + "-wal").c_str(), &st) == 0) wal_max = std::max<int64_t>(wal_max, st.st_size);
  }
  INFO("largest WAL " << wal_max << " bytes");
  CHECK(wal_max > 0);
  CHECK(wal_max < (int64_t{12} << 20));
  REQUIRE(j->Close().ok());
  auto again = MustOpen(Options(path));
  ReadResult r = ReadAll(*again);
  REQUIRE(r.status.ok());
  CheckPayloadRange(r.records, 1, 20'000);
}

TEST_CASE("a durable listener's eventfd is signalled after each group commit and on close",
          "[journal]") {
  TempDir dir;
  auto j = MustOpen(Options(dir.File("listener.db"), Durability::kNormal));
  absl::StatusOr<int> fd = j->AddDurableListener();
  REQUIRE(fd.ok());
  uint64_t count = 0;
  CHECK(::read(*fd, &count, sizeof count) < 0);  // nothing committed yet: not readable
  const Seq last = AppendPayloads(*j, 50);
  REQUIRE(j->WaitDurable(last).ok());
  // The writer wakes WaitDurable's callers, then the listeners: wait for the fd.
  pollfd readable{*fd, POLLIN, 0};
  REQUIRE(::poll(&readable, 1, 10'000) == 1);
  REQUIRE(::read(*fd, &count, sizeof count) == sizeof count);
  CHECK(count >= 1);
  absl::StatusOr<bool> durable = j->PollDurable(last);
  REQUIRE(durable.ok());
  CHECK(*durable);
  CHECK(j->PollDurable(last + 1).status().code() == absl::StatusCode::kInvalidArgument);
  const Seq more = AppendPayloads(*j, 5);
  REQUIRE(j->Close().ok());  // writes what was appended, then signals (before returning)
  REQUIRE(::read(*fd, &count, sizeof count) == sizeof count);
  durable = j->PollDurable(more);
  REQUIRE(durable.ok());
  CHECK(*durable);
  j->RemoveDurableListener(*fd);  // closes it
  CHECK(::fcntl(*fd, F_GETFD) < 0);
}

TEST_CASE("groups respect the record and byte limits", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("limits.db");
  JournalOptions o = Options(path, Durability::kNormal);
  o.group_records_max = 7;
  o.group_bytes_max = 1000;
  {
    auto j = MustOpen(o);
    Seq last = 0;
    for (int i = 0; i < 300; ++i) {
      last = j->Append(std::string(100, static_cast<char>('a' + i % 26)));
    }
    REQUIRE(j->WaitDurable(last).ok());
    REQUIRE(j->Close().ok());
  }
  Sql sql(path);
  CHECK(sql.Int("SELECT sum(record_count) FROM journal_groups") == 300);
  CHECK(sql.Int("SELECT max(record_count) FROM journal_groups") <= 7);
  CHECK(sql.Int("SELECT max(length(data)) FROM journal_groups") <= 1000);
  CHECK(sql.Int("SELECT count(*) FROM journal_groups WHERE last_seq - first_seq + 1 != "
                "record_count") == 0);
  CHECK(sql.Int("SELECT value FROM meta WHERE key = 'format_version'") == kJournalFormatVersion);
}

TEST_CASE("8 threads x 10k appends with WaitDurable: all durable, in order, nothing lost or "
          "duplicated",
          "[journal]") {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10'000;
  constexpr Seq kTotal = Seq{kThreads} * kPerThread;
  TempDir dir;
  const std::string path = dir.File("threads.db");
  // seqs[t][i] = the seq Append returned for thread t's i-th record.
  std::vector<std::vector<Seq>> seqs(kThreads, std::vector<Seq>(kPerThread));
  std::atomic<int64_t> failures{0};
  std::atomic<int64_t> reader_failures{0};
  std::atomic<int64_t> reads{0};
  auto payload = [](int t, int i) { return absl::StrCat("thread ", t, " record ", i); };
  {
    auto j = MustOpen(Options(path, Durability::kNormal));
    std::atomic<bool> done{false};
    // A reader running beside the appenders always sees a gapless prefix.
    std::thread reader([&] {
      while (!done.load()) {
        Seq expect = 1;
        const absl::Status s = j->Read(0, [&](Seq seq, absl::string_view) {
          if (seq != expect++) reader_failures.fetch_add(1);
          return absl::OkStatus();
        });
        if (!s.ok()) reader_failures.fetch_add(1);
        reads.fetch_add(1);
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          const Seq seq = j->Append(payload(t, i));
          seqs[t][i] = seq;
          if (!j->WaitDurable(seq).ok() || j->durable_seq() < seq) failures.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    done.store(true);
    reader.join();
    CHECK(failures.load() == 0);
    CHECK(reader_failures.load() == 0);
    CHECK(reads.load() >= 1);
    CHECK(j->appended_seq() == kTotal);
    CHECK(j->durable_seq() == kTotal);
    REQUIRE(j->Close().ok());
  }
  std::vector<std::string> want(static_cast<size_t>(kTotal) + 1);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const Seq seq = seqs[t][i];
      REQUIRE(seq >= 1);
      REQUIRE(seq <= kTotal);
      if (i > 0) REQUIRE(seq > seqs[t][i - 1]);  // a thread's records keep its order
      REQUIRE(want[static_cast<size_t>(seq)].empty());  // no seq handed out twice
      want[static_cast<size_t>(seq)] = payload(t, i);
    }
  }
  auto j = MustOpen(Options(path, Durability::kNormal));
  Seq expect = 1;
  int64_t mismatches = 0;
  ReadStats stats;
  REQUIRE(j->Read(
               0,
               [&](Seq seq, absl::string_view rec) {
                 if (seq != expect++ || rec != want[static_cast<size_t>(seq)]) ++mismatches;
                 return absl::OkStatus();
               },
               &stats)
              .ok());
  CHECK(mismatches == 0);
  CHECK(stats.records_read == kTotal);
  CHECK(stats.groups_read <= kTotal);
}

TEST_CASE("WaitDurable refuses a seq never appended; a record appended after Close is never "
          "durable",
          "[journal]") {
  TempDir dir;
  auto j = MustOpen(Options(dir.File("w.db")));
  CHECK(j->WaitDurable(1).code() == absl::StatusCode::kInvalidArgument);
  const Seq a = j->Append("a");
  REQUIRE(j->Close().ok());
  CHECK(j->WaitDurable(a).ok());  // written by Close
  const Seq b = j->Append("b");
  CHECK(b == a + 1);
  const absl::Status s = j->WaitDurable(b);
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(s.message(), "closed"));
  CHECK(j->durable_seq() == a);
}

TEST_CASE("snapshots: save, latest, compact; seqs continue after compaction", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("snap.db");
  {
    auto j = MustOpen(Options(path));
    auto none = j->LatestSnapshot();
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    CHECK(j->Compact(0).code() == absl::StatusCode::kFailedPrecondition);  // no snapshot yet

    AppendPayloads(*j, 50);  // not waited: SaveSnapshot waits itself
    REQUIRE(j->SaveSnapshot(50, "state at 50").ok());
    CHECK(j->durable_seq() >= 50);
    AppendPayloads(*j, 50);
    REQUIRE(j->SaveSnapshot(100, std::string("state\0at 100", 12)).ok());
    CHECK(j->SaveSnapshot(101, "ahead").code() == absl::StatusCode::kInvalidArgument);
    CHECK(j->SaveSnapshot(-1, "negative").code() == absl::StatusCode::kInvalidArgument);
    const Seq last = AppendPayloads(*j, 50);
    REQUIRE(j->WaitDurable(last).ok());

    auto latest = j->LatestSnapshot();
    REQUIRE(latest.ok());
    REQUIRE(latest->has_value());
    CHECK((*latest)->seq == 100);
    CHECK((*latest)->bytes == std::string("state\0at 100", 12));

    // Compaction may not pass the newest valid snapshot.
    const absl::Status too_far = j->Compact(120);
    CHECK(too_far.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(too_far.message(), "no valid snapshot"));
    REQUIRE(j->Compact(100).ok());

    ReadResult r = ReadAll(*j, 100);
    REQUIRE(r.status.ok());
    CheckPayloadRange(r.records, 101, 150);
    r = ReadAll(*j, 0);
    CHECK(r.status.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(r.status.message(), "compacted"));
    REQUIRE(j->Close().ok());
  }
  {
    Sql sql(path);
    CHECK(sql.Int("SELECT count(*) FROM snapshots") == 1);
    CHECK(sql.Int("SELECT min(last_seq) FROM journal_groups") > 100);
    CHECK(sql.Int("SELECT value FROM meta WHERE key = 'compacted_seq'") == 100);
  }
  {
    auto j = MustOpen(Options(path));
    CHECK(j->appended_seq() == 150);
    auto latest = j->LatestSnapshot();
    REQUIRE(latest.ok());
    REQUIRE(latest->has_value());
    CHECK((*latest)->seq == 100);
    // A snapshot of everything, then compact everything: the store holds no
    // group at all, yet the sequence continues.
    REQUIRE(j->SaveSnapshot(150, "").ok());
    REQUIRE(j->Compact(150).ok());
    REQUIRE(j->Close().ok());
  }
  {
    Sql sql(path);
    CHECK(sql.Int("SELECT count(*) FROM journal_groups") == 0);
  }
  auto j = MustOpen(Options(path));
  CHECK(j->appended_seq() == 150);
  auto latest = j->LatestSnapshot();
  REQUIRE(latest.ok());
  REQUIRE(latest->has_value());
  CHECK((*latest)->seq == 150);
  CHECK((*latest)->bytes.empty());
  CHECK(j->Append(Payload(151)) == 151);
  REQUIRE(j->WaitDurable(151).ok());
  ReadResult r = ReadAll(*j, 150);
  REQUIRE(r.status.ok());
  CheckPayloadRange(r.records, 151, 151);
}

TEST_CASE("a damaged snapshot is skipped and an older valid one wins", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("snap.db");
  {
    auto j = MustOpen(Options(path));
    AppendPayloads(*j, 20);
    REQUIRE(j->SaveSnapshot(10, "ten").ok());
    REQUIRE(j->SaveSnapshot(20, "twenty").ok());
    REQUIRE(j->Close().ok());
  }
  {
    Sql sql(path);
    sql.Exec("UPDATE snapshots SET data = CAST('twentX' AS BLOB) WHERE seq = 20");
  }
  auto j = MustOpen(Options(path));
  StderrCapture capture;
  auto latest = j->LatestSnapshot();
  // Compaction must not trust the damaged snapshot either.
  const absl::Status compact = j->Compact(20);
  const std::string log = capture.Stop();
  REQUIRE(latest.ok());
  REQUIRE(latest->has_value());
  CHECK((*latest)->seq == 10);
  CHECK((*latest)->bytes == "ten");
  CHECK(absl::StrContains(log, "snapshot at seq 20 is damaged"));
  CHECK(compact.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(j->Compact(10).ok());
}

TEST_CASE("a second writer is refused while the first is open, also from another process",
          "[journal]") {
  TempDir dir;
  const std::string path = dir.File("locked.db");
  const std::string log = dir.File("child.log");
  {
    auto first = MustOpen(Options(path));
    first->Append("held");
    auto second = Journal::Open(Options(path));
    CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(second.status().message(), "already open for writing"));
    CHECK(absl::StrContains(second.status().message(), path));

    const int status = RunChild("expect_locked", path, log);
    INFO("child output: " << FileText(log));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    REQUIRE(first->Close().ok());
  }
  // Released on close: another process, then this one, may open it.
  const int status = RunChild("expect_ok", path, log);
  INFO("child output: " << FileText(log));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto again = MustOpen(Options(path));
  CHECK(again->appended_seq() == 1);
}

TEST_CASE("a missing directory, a file in the path and a read-only directory are refused "
          "clearly",
          "[journal]") {
  TempDir dir;
  const std::string missing = dir.File("no-such-dir/store.db");
  auto j = Journal::Open(Options(missing));
  CHECK(j.status().code() == absl::StatusCode::kNotFound);
  CHECK(absl::StrContains(j.status().message(), dir.File("no-such-dir")));
  CHECK(absl::StrContains(j.status().message(), "does not exist"));

  // A regular file where a directory should be (cannot be created, even by root).
  { std::ofstream(dir.File("plain-file")) << "x"; }
  j = Journal::Open(Options(dir.File("plain-file/store.db")));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(j.status().message(), "not a directory"));
  CHECK(absl::StrContains(j.status().message(), dir.File("plain-file")));

  // A directory as the store path.
  j = Journal::Open(Options(dir.path()));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);

  // A read-only directory: root writes anyway, so the check only means
  // something for other users (root is covered by the regular-file case).
  if (::geteuid() != 0) {
    const std::string ro = dir.File("read-only");
    REQUIRE(::mkdir(ro.c_str(), 0555) == 0);
    j = Journal::Open(Options(ro + "/store.db"));
    CHECK(j.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(absl::StrContains(j.status().message(), "not writable"));
    CHECK(absl::StrContains(j.status().message(), ro));
    CHECK_FALSE(fs::exists(ro + "/store.db"));
  }
}

TEST_CASE("a newer or unknown format version, a foreign SQLite file and a non-SQLite file are "
          "refused and left as they were",
          "[journal]") {
  TempDir dir;
  const std::string path = dir.File("versioned.db");
  {
    auto j = MustOpen(Options(path));
    AppendPayloads(*j, 10);
    REQUIRE(j->Close().ok());
  }
  {
    Sql sql(path);
    sql.Exec("UPDATE meta SET value = 99 WHERE key = 'format_version'");
  }
  auto j = Journal::Open(Options(path));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(j.status().message(), "format version 99"));
  CHECK(absl::StrContains(j.status().message(), "newer"));
  {
    Sql sql(path);
    CHECK(sql.Int("SELECT value FROM meta WHERE key = 'format_version'") == 99);
    CHECK(sql.Int("SELECT sum(record_count) FROM journal_groups") == 10);
    sql.Exec("UPDATE meta SET value = 0 WHERE key = 'format_version'");
  }
  j = Journal::Open(Options(path));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(j.status().message(), "unknown format version 0"));

  const std::string foreign = dir.File("foreign.db");
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(foreign.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE users(id INTEGER)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    sqlite3_close(db);
  }
  j = Journal::Open(Options(foreign));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(j.status().message(), "not a boxoffice store"));

  const std::string text = dir.File("notes.txt");
  const std::string junk(8192, 'z');
  { std::ofstream(text) << junk; }
  j = Journal::Open(Options(text));
  CHECK(j.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(j.status().message(), "not a boxoffice store"));
  CHECK(FileText(text) == junk);
}

// Appends `count` payload records in groups of at most `group` records and
// returns the (first_seq) of the last group row.
Seq WriteGroups(const std::string& path, Seq count, int64_t group) {
  JournalOptions o = Options(path, Durability::kNormal);
  o.group_records_max = group;
  auto j = MustOpen(o);
  const Seq last = AppendPayloads(*j, count);
  REQUIRE(j->WaitDurable(last).ok());
  REQUIRE(j->Close().ok());
  Sql sql(path);
  REQUIRE(sql.Int("SELECT count(*) FROM journal_groups") >= 3);
  return sql.Int("SELECT max(first_seq) FROM journal_groups");
}

TEST_CASE("a damaged last group is skipped, reported and then replaced", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("torn.db");
  const Seq torn_first = WriteGroups(path, 95, 10);
  {
    Sql sql(path);
    const std::string where = absl::StrCat(" FROM journal_groups WHERE first_seq = ", torn_first);
    std::string data = sql.Blob("SELECT data" + where);
    data[data.size() / 2] = static_cast<char>(data[data.size() / 2] ^ 0x20);
    sql.SetBlob("UPDATE journal_groups SET data = ?1 WHERE first_seq = " +
                    std::to_string(torn_first),
                data);
  }
  auto j = MustOpen(Options(path));
  CHECK(j->appended_seq() == torn_first - 1);
  StderrCapture capture;
  ReadResult r = ReadAll(*j);
  const std::string log = capture.Stop();
  REQUIRE(r.status.ok());
  CheckPayloadRange(r.records, 1, torn_first - 1);
  CHECK(r.stats.torn_groups_skipped == 1);
  CHECK(r.stats.torn_first_seq == torn_first);
  CHECK(r.stats.torn_last_seq == 95);
  CHECK(r.stats.last_seq == torn_first - 1);
  CHECK(absl::StrContains(log, "torn tail"));
  CHECK(absl::StrContains(log, absl::StrCat("seqs ", torn_first, "..95")));
  CHECK(absl::StrContains(log, "checksum mismatch"));

  // The next records take the torn seqs; the torn row is gone.
  const Seq next = AppendPayloads(*j, 1);
  CHECK(next == torn_first);
  REQUIRE(j->WaitDurable(next).ok());
  r = ReadAll(*j);
  REQUIRE(r.status.ok());
  CHECK(r.stats.torn_groups_skipped == 0);
  CheckPayloadRange(r.records, 1, torn_first);
  REQUIRE(j->Close().ok());
  j = MustOpen(Options(path));
  CHECK(j->appended_seq() == torn_first);
  r = ReadAll(*j);
  REQUIRE(r.status.ok());
  CheckPayloadRange(r.records, 1, torn_first);
}

TEST_CASE("a damaged or missing group in the middle is DataLoss", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("middle.db");
  WriteGroups(path, 95, 10);
  Seq middle = 0;
  {
    Sql sql(path);
    middle = sql.Int("SELECT first_seq FROM journal_groups ORDER BY first_seq LIMIT 1 OFFSET 1");
    sql.Exec(absl::StrCat("UPDATE journal_groups SET checksum = checksum + 1 WHERE first_seq = ",
                          middle));
  }
  {
    auto j = MustOpen(Options(path));
    CHECK(j->appended_seq() == 95);  // the last group is fine
    ReadResult r = ReadAll(*j);
    CHECK(r.status.code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StrContains(r.status.message(), "not the last group"));
    CHECK(r.stats.last_seq == middle - 1);  // nothing of the damaged group was delivered
    CHECK(r.stats.torn_groups_skipped == 0);
  }
  {
    Sql sql(path);
    sql.Exec(absl::StrCat("DELETE FROM journal_groups WHERE first_seq = ", middle));
  }
  auto j = MustOpen(Options(path));
  ReadResult r = ReadAll(*j);
  CHECK(r.status.code() == absl::StatusCode::kDataLoss);
  CHECK(absl::StrContains(r.status.message(), "missing"));
}

TEST_CASE("a failing commit fails WaitDurable and Close instead of hanging", "[journal]") {
  TempDir dir;
  const std::string path = dir.File("failing.db");
  MustOpen(Options(path))->Close().IgnoreError();
  {
    // Stands in for a full disk: every group past seq 10 is refused.
    Sql sql(path);
    sql.Exec("CREATE TRIGGER refuse BEFORE INSERT ON journal_groups WHEN NEW.last_seq > 10 "
             "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END");
  }
  {
    auto j = MustOpen(Options(path));
    const Seq ten = AppendPayloads(*j, 10);
    REQUIRE(j->WaitDurable(ten).ok());
    StderrCapture capture;
    std::vector<std::thread> waiters;
    std::atomic<int> failed{0};
    for (int t = 0; t < 4; ++t) {
      waiters.emplace_back([&] {
        const Seq seq = j->Append("doomed");
        if (!j->WaitDurable(seq).ok()) failed.fetch_add(1);
      });
    }
    for (auto& w : waiters) w.join();
    const Seq later = j->Append("also doomed");
    const absl::Status s = j->WaitDurable(later);
    const absl::Status closed = j->Close();
    const std::string log = capture.Stop();
    CHECK(failed.load() == 4);
    CHECK_FALSE(s.ok());
    CHECK(absl::StrContains(s.message(), "simulated write failure"));
    CHECK(closed.message() == s.message());
    CHECK(j->durable_seq() == 10);
    CHECK(absl::StrContains(log, "no more records will be written"));
  }
  {
    Sql sql(path);
    sql.Exec("DROP TRIGGER refuse");
  }
  auto j = MustOpen(Options(path));
  CHECK(j->appended_seq() == 10);
  ReadResult r = ReadAll(*j);
  REQUIRE(r.status.ok());
  CheckPayloadRange(r.records, 1, 10);
}

// A store reopened after damage either opens and reads back a gapless prefix
// of the payloads, or says clearly why not; it never crashes.
void CheckPrefixOrError(const std::string& path, Seq written_max) {
  auto j = Journal::Open(Options(path));
  if (!j.ok()) {
    INFO(j.status().ToString());
    CHECK_FALSE(j.status().message().empty());
    return;
  }
  StderrCapture capture;  // a torn-tail line may be logged
  ReadResult r = ReadAll(**j);
  capture.Stop();
  if (r.status.ok()) {
    CHECK(r.stats.last_seq <= written_max);
    CheckPayloadRange(r.records, 1, r.stats.last_seq);
  } else {
    INFO(r.status.ToString());
    CHECK((r.status.code() == absl::StatusCode::kDataLoss ||
           r.status.code() == absl::StatusCode::kUnavailable ||
           r.status.code() == absl::StatusCode::kInternal));
  }
}

TEST_CASE("a writer killed by SIGKILL keeps every acknowledged record; a truncated WAL "
          "recovers to a prefix",
          "[journal]") {
  TempDir dir;
  const std::string path = dir.File("crash.db");
  const std::string log = dir.File("child.log");
  const int status = RunChild("crash", path, log);
  INFO("child output: " << FileText(log));
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
  std::istringstream acks(FileText(path + ".acked"));
  Seq acked = 0;
  for (Seq v = 0; acks >> v;) acked = v;
  REQUIRE(acked == 2000);
  REQUIRE(fs::exists(path + "-wal"));
  const auto wal_size = static_cast<int64_t>(fs::file_size(path + "-wal"));
  REQUIRE(wal_size > 0);

  // Copies of the crashed store with the WAL cut in different places.
  const std::vector<int64_t> cuts = {1, 100, 5000, wal_size / 2, wal_size - 32, wal_size};
  for (size_t i = 0; i < cuts.size(); ++i) {
    const int64_t cut = std::min(cuts[i], wal_size);
    INFO("WAL cut by " << cut << " of " << wal_size << " bytes");
    const std::string copy = dir.File(absl::StrCat("cut", i, ".db"));
    fs::copy_file(path, copy);
    fs::copy_file(path + "-wal", copy + "-wal");
    fs::resize_file(copy + "-wal", static_cast<uintmax_t>(wal_size - cut));
    CheckPrefixOrError(copy, 2500);
    if (cut <= 100) {
      // A partial last frame only loses the last transaction.
      auto j = MustOpen(Options(copy));
      ReadResult r = ReadAll(*j);
      REQUIRE(r.status.ok());
      CHECK(j->appended_seq() == r.stats.last_seq);
      CHECK(r.stats.last_seq >= 1);
    }
  }

  auto j = MustOpen(Options(path));
  CHECK(j->appended_seq() >= acked);
  CHECK(j->appended_seq() <= 2500);
  ReadResult r = ReadAll(*j);
  REQUIRE(r.status.ok());
  CHECK(r.stats.torn_groups_skipped == 0);
  CheckPayloadRange(r.records, 1, j->appended_seq());
}

TEST_CASE("a truncated or bit-flipped database file gives a prefix or a clear error, never a "
          "crash",
          "[journal]") {
  TempDir dir;
  const std::string path = dir.File("base.db");
  {
    auto j = MustOpen(Options(path, Durability::kNormal));
    for (int batch = 0; batch < 20; ++batch) {
      const Seq last = AppendPayloads(*j, 100);
      REQUIRE(j->WaitDurable(last).ok());
    }
    REQUIRE(j->SaveSnapshot(1000, std::string(5000, 's')).ok());
    REQUIRE(j->Close().ok());
  }
  REQUIRE_FALSE(fs::exists(path + "-wal"));  // checkpointed on close
  const auto size = static_cast<int64_t>(fs::file_size(path));
  int case_no = 0;
  for (int64_t keep : {size - 1, size - 4096, size / 2, int64_t{4096}, int64_t{100}}) {
    INFO("database truncated to " << keep << " of " << size << " bytes");
    const std::string copy = dir.File(absl::StrCat("trunc", case_no++, ".db"));
    fs::copy_file(path, copy);
    fs::resize_file(copy, static_cast<uintmax_t>(keep));
    CheckPrefixOrError(copy, 2000);
  }
  for (int64_t from_end : {int64_t{64}, int64_t{600}, int64_t{3000}, size / 3}) {
    INFO("64 bytes flipped " << from_end << " bytes before the end of " << size);
    const std::string copy = dir.File(absl::StrCat("flip", case_no++, ".db"));
    fs::copy_file(path, copy);
    {
      std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(size - from_end);
      std::string bytes(64, '\0');
      f.read(bytes.data(), 64);
      for (char& c : bytes) c = static_cast<char>(~c);
      f.seekp(size - from_end);
      f.write(bytes.data(), 64);
    }
    CheckPrefixOrError(copy, 2000);
  }
}

}  // namespace
}  // namespace boxoffice
