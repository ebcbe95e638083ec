// Store: see store.h for what it does and why.
#include "boxoffice/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boxoffice/assert.h"
#include "boxoffice/catalog.h"
#include "boxoffice/errors.h"
#include "boxoffice/snapshot.h"

namespace boxoffice {
namespace {

// Recovery in two stages on two threads: a reader thread reads the journal's
// groups from SQLite, checks their checksums and decodes their records into
// batches, while the calling thread replays the batches in order. The engine
// is the slower stage, so recovery takes about as long as replaying alone.
// At most kQueued batches wait, so memory stays bounded however long the
// journal. Returns the reader's status (the batches read before an error are
// replayed; the caller discards the engine then).
absl::Status ReplayJournal(Journal& journal, Engine& engine, Seq after, ReadStats* read) {
  constexpr size_t kBatch = 8192;
  constexpr size_t kQueued = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<Command>> ready;
  bool done = false;
  absl::Status status;
  std::thread reader([&] {
    std::vector<Command> batch;
    batch.reserve(kBatch);
    auto push = [&] {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return ready.size() < kQueued; });
      ready.push_back(std::move(batch));
      cv.notify_all();
      batch = {};
      batch.reserve(kBatch);
    };
    absl::Status s = journal.Read(
        after,
        [&](Seq, absl::string_view record) -> absl::Status {
          absl::StatusOr<Command> c = DecodeCommand(record);
          // A record that passed its group's checksum but does not decode is damage.
          if (!c.ok()) return MakeError(ErrorCode::kDataLoss, c.status().message());
          batch.push_back(*std::move(c));
          if (batch.size() == kBatch) push();
          return absl::OkStatus();
        },
        read);
    if (!batch.empty()) push();
    std::lock_guard<std::mutex> lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_all();
  });
  while (true) {
    std::vector<Command> batch;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !ready.empty() || done; });
      if (ready.empty()) break;
      batch = std::move(ready.front());
      ready.pop_front();
      cv.notify_all();
    }
    for (const Command& c : batch) {
      (void)engine.Apply(c);  // commands that failed when recorded fail again
    }
  }
  reader.join();
  return status;
}

// The journal gives a stable code to each condition that has one where it
// detects it (locked, version, closed, damage, bad arguments; journal.h). What
// it leaves without one is the OS or SQLite refusing the file (a missing
// directory, permissions, a full disk, an I/O error): the store cannot be used.
absl::Status StoreError(const absl::Status& s) {
  if (HasErrorCode(s)) return s;
  return MakeError(ErrorCode::kStoreUnavailable, s.message());
}

// The store holds password hashes and the server's secrets (api_meta), so a
// new store file and its lock file are created readable by their owner only
// (0600), before SQLite opens the file: SQLite gives the -wal and -shm files
// the database file's permissions. An existing file keeps its mode (the server
// tightens it with a warning). A failure here is left to Journal::Open, which
// reports each problem (missing directory, no permission) in its own words.
void CreatePrivately(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  // Before any file is created (Journal::Open checks it too, after CreatePrivately).
  if (absl::Status s = CheckGroupCommitInterval(options.group_commit_interval); !s.ok()) {
    return s;
  }
  std::unique_ptr<Store> store(new Store(options));
  if (!options.path.empty()) {
    CreatePrivately(options.path);
    CreatePrivately(options.path + ".lock");
  }
  JournalOptions j;
  j.path = options.path;
  j.durability = options.durability;
  j.group_commit_interval = options.group_commit_interval;
  absl::StatusOr<std::unique_ptr<Journal>> journal = Journal::Open(j);
  if (!journal.ok()) return StoreError(journal.status());
  store->journal_ = *std::move(journal);

  absl::StatusOr<std::optional<boxoffice::Snapshot>> latest = store->journal_->LatestSnapshot();
  if (!latest.ok()) return StoreError(latest.status());
  RecoveryStats& stats = store->recovery_;
  if (!latest->has_value()) {
    if (store->journal_->appended_seq() != 0) {
      return MakeError(ErrorCode::kDataLoss,
                       absl::StrCat("store ", options.path,
                                    " has journal records but no valid snapshot to start from"));
    }
    // A new store: its first snapshot carries the config (limits, seed).
    store->engine_ = std::make_unique<Engine>(options.config);
    if (absl::Status s = store->journal_->SaveSnapshot(0, SaveSnapshot(*store->engine_));
        !s.ok()) {
      return StoreError(s);
    }
    stats.created = true;
  } else {
    absl::StatusOr<std::unique_ptr<Engine>> engine = LoadSnapshot((*latest)->bytes);
    if (!engine.ok()) {
      return MakeError(ErrorCode::kDataLoss,
                       absl::StrCat("store ", options.path, ": snapshot at seq ", (*latest)->seq,
                                    ": ", engine.status().message()));
    }
    stats.snapshot_seq = (*latest)->seq;
    ReadStats read;
    Engine& e = **engine;
    absl::Status s = ReplayJournal(*store->journal_, e, stats.snapshot_seq, &read);
    // A half-replayed engine never becomes the store's: Close must not save it.
    if (!s.ok()) return StoreError(s);
    store->engine_ = *std::move(engine);
    stats.replayed = read.records_read;
    stats.torn_groups_skipped = read.torn_groups_skipped;
  }
  stats.last_seq = store->journal_->appended_seq();
  // The state now holds every record up to last_seq: snapshots are taken at it.
  store->engine_->SetCommandSink(store.get(), stats.last_seq);
  if (options.snapshot_every_records > 0) {
    store->snapshotter_ = std::thread([s = store.get()] { s->SnapshotLoop(); });
  }
  return store;
}

Store::~Store() { (void)Close(); }

std::shared_ptr<Engine> Store::ShareEngine(std::shared_ptr<Store> store) {
  Engine* engine = store->engine_.get();
  return std::shared_ptr<Engine>(std::move(store), engine);
}

Seq Store::Record(const Command& command) {
  // Called under the engine's lock: one caller at a time, in apply order.
  scratch_.clear();
  EncodeCommand(command, &scratch_);
  const Seq seq = journal_->Append(scratch_);
  if (options_.snapshot_every_records > 0 && ++since_snapshot_counter_ >= options_.snapshot_every_records) {
    since_snapshot_counter_ = 0;
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_requested_ = true;
    snapshot_cv_.notify_one();
  }
  return seq;
}

absl::Status Store::Accepting() {
  absl::Status s = journal_->writer_status();
  if (s.ok()) return s;
  return MakeError(ErrorCode::kStoreUnavailable,
                   absl::StrCat("the journal can no longer be written (", s.message(),
                                "); restart the server once the store is fixed"));
}

absl::Status Store::WaitDurable(Seq seq) {
  if (seq <= 0) return absl::OkStatus();
  return StoreError(journal_->WaitDurable(seq));
}

absl::StatusOr<bool> Store::PollDurable(Seq seq) {
  if (seq <= 0) return true;
  absl::StatusOr<bool> durable = journal_->PollDurable(seq);
  if (!durable.ok()) return StoreError(durable.status());
  return *durable;
}

absl::Status Store::Snapshot(bool write_catalog) {
  std::lock_guard<std::mutex> lock(close_mu_);
  if (closed_.load()) return MakeError(ErrorCode::kStoreClosed, "the store is closed");
  Seq seq = 0;
  std::string bytes = SaveSnapshot(*engine_, &seq);
  if (absl::Status s = journal_->SaveSnapshot(seq, bytes); !s.ok()) return StoreError(s);
  if (absl::Status s = journal_->Compact(seq); !s.ok()) return StoreError(s);
  return write_catalog ? WriteCatalog(*engine_, options_.path, seq) : absl::OkStatus();
}

void Store::SnapshotLoop() {
  std::unique_lock<std::mutex> lock(snapshot_mu_);
  while (true) {
    snapshot_cv_.wait(lock, [this] { return stopping_ || snapshot_requested_; });
    if (stopping_) return;
    snapshot_requested_ = false;
    lock.unlock();
    (void)Snapshot(/*write_catalog=*/false);  // a failure only means a longer replay later
    lock.lock();
  }
}

absl::Status Store::Close() {
  // Concurrent callers wait here until the snapshot thread is stopped once.
  std::call_once(stop_snapshotter_, [this] {
    {
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      stopping_ = true;
      snapshot_cv_.notify_one();
    }
    if (snapshotter_.joinable()) snapshotter_.join();
  });
  std::lock_guard<std::mutex> lock(close_mu_);
  if (closed_.exchange(true)) return absl::OkStatus();
  if (journal_ == nullptr) return absl::OkStatus();        // Open failed early
  if (engine_ == nullptr) return StoreError(journal_->Close());  // Open failed in recovery
  engine_->SetCommandSink(nullptr);
  Seq seq = 0;
  std::string bytes = SaveSnapshot(*engine_, &seq);
  absl::Status s = journal_->SaveSnapshot(seq, bytes);
  if (s.ok()) s = journal_->Compact(seq);
  if (s.ok()) s = WriteCatalog(*engine_, options_.path, seq);
  absl::Status closed = journal_->Close();
  return StoreError(s.ok() ? closed : s);
}

absl::StatusOr<JournalRecords> ReadJournalRecords(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return MakeError(ErrorCode::kStoreUnavailable, absl::StrCat("no store file at ", path));
  }
  JournalOptions options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<Journal>> journal = Journal::Open(options);
  if (!journal.ok()) return StoreError(journal.status());
  JournalRecords out;
  out.last_seq = (*journal)->appended_seq();
  auto collect = [&out](Seq seq, absl::string_view record) -> absl::Status {
    if (out.records.empty()) out.first_seq = seq;
    out.records.emplace_back(record);
    return absl::OkStatus();
  };
  absl::Status s = (*journal)->Read(0, collect);
  if (absl::IsFailedPrecondition(s) && out.records.empty()) {
    // Compacted behind a snapshot: what is left starts after the newest one.
    absl::StatusOr<std::optional<boxoffice::Snapshot>> latest = (*journal)->LatestSnapshot();
    if (!latest.ok()) return StoreError(latest.status());
    const Seq after = latest->has_value() ? (*latest)->seq : 0;
    s = (*journal)->Read(after, collect);
  }
  if (!s.ok()) return StoreError(s);
  if (out.records.empty()) out.first_seq = out.last_seq + 1;
  if (absl::Status c = (*journal)->Close(); !c.ok()) return StoreError(c);
  return out;
}

}  // namespace boxoffice
