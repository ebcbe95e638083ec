// Store: an Engine made durable by a Journal in one SQLite file.
//
// Opening a store recovers the engine: the latest valid snapshot, then a
// replay of every journal record after it through Engine::Apply (the same
// code the original commands ran). From then on the Store is the engine's
// CommandSink: every command is encoded and appended to the journal before it
// is applied, and WaitDurable(seq) blocks until the group holding `seq` is
// committed with the store's durability (journal.h says what each mode can
// lose). A background thread takes a snapshot every `snapshot_every_records`
// records and compacts the journal behind it; Close() takes a last snapshot,
// so a clean reopen replays nothing. Close() and explicit snapshots also
// rewrite the SQL catalog tables (catalog.h) for analysts. A new store saves a snapshot of the
// empty engine at sequence 0, so the config (limits, seed) is kept with it.
// A new store file (and its lock file) is created 0600, owner only: it holds
// the server's accounts and secrets, and SQLite gives -wal and -shm its mode.
//
// Errors of Open (with the path in the message): STORE_UNAVAILABLE (missing
// or unwritable directory, I/O error), STORE_LOCKED (another writer holds
// it), STORE_VERSION_UNSUPPORTED (written by a newer boxoffice), DATA_LOSS
// (damage that is not a torn tail). A torn tail is not an error: the
// incomplete last group is ignored (logged, and counted in recovery()).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/journal.h"

namespace boxoffice {

struct StoreOptions {
  std::string path;
  Durability durability = Durability::kFull;
  EngineConfig config;  // for a new store; an existing one keeps its own
  int64_t snapshot_every_records = 1'000'000;  // 0 = only on Close
  // JournalOptions::group_commit_interval (journal.h): 0 ..= 1 s.
  absl::Duration group_commit_interval = absl::ZeroDuration();
};

struct RecoveryStats {
  bool created = false;        // a new, empty store
  Seq snapshot_seq = 0;        // the snapshot recovery started from
  int64_t replayed = 0;        // journal records replayed after it
  int64_t torn_groups_skipped = 0;
  Seq last_seq = 0;            // the last journal sequence in the store
};

class Store final : public CommandSink {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Engine& engine() { return *engine_; }
  // Shared ownership of the engine that keeps this store alive with it.
  static std::shared_ptr<Engine> ShareEngine(std::shared_ptr<Store> store);

  // CommandSink: encodes `command` and appends it to the journal (no I/O).
  Seq Record(const Command& command) override;
  absl::Status Accepting() override;
  // Blocks until every record <= seq is durable. STORE_CLOSED after Close;
  // STORE_UNAVAILABLE if the writer failed (the journal says why).
  absl::Status WaitDurable(Seq seq);
  // WaitDurable without blocking (Journal::PollDurable): true once durable,
  // false while it may still be, WaitDurable's errors when it never will be.
  absl::StatusOr<bool> PollDurable(Seq seq);
  // An eventfd the journal signals after each group commit, writer failure and
  // close (Journal::AddDurableListener): an event loop watching it waits for
  // durability without a thread. The store owns it; Remove closes it.
  absl::StatusOr<int> AddDurableListener() { return journal_->AddDurableListener(); }
  void RemoveDurableListener(int fd) { journal_->RemoveDurableListener(fd); }
  // Saves a snapshot of the current state, compacts the journal behind it and
  // (when asked) rewrites the catalog tables. The background snapshots skip
  // the catalog: rewriting it holds SQLite's write lock for a while, which
  // would delay the journal's group commits in the middle of a drop.
  absl::Status Snapshot(bool write_catalog = true);
  // Stops journaling (the engine keeps working in memory, no longer durable),
  // takes a last snapshot and closes the file. Idempotent.
  absl::Status Close();

  const std::string& path() const { return options_.path; }
  Durability durability() const { return options_.durability; }
  const RecoveryStats& recovery() const { return recovery_; }
  bool closed() const { return closed_.load(); }

 private:
  explicit Store(const StoreOptions& options) : options_(options) {}
  void SnapshotLoop();

  const StoreOptions options_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Engine> engine_;
  RecoveryStats recovery_;
  std::atomic<bool> closed_{false};
  std::mutex close_mu_;      // serializes Close and Snapshot
  std::mutex snapshot_mu_;   // guards the fields below
  std::condition_variable snapshot_cv_;
  bool snapshot_requested_ = false;
  bool stopping_ = false;
  std::thread snapshotter_;
  std::once_flag stop_snapshotter_;
  // Used by Record only, under the engine's lock.
  std::string scratch_;                 // encode buffer
  int64_t since_snapshot_counter_ = 0;  // records since the last snapshot request
};

// The records still in the journal of a store, for analysis and replay.
struct JournalRecords {
  Seq first_seq = 1;  // the seq of records[0] (last_seq + 1 when there are none)
  Seq last_seq = 0;   // the last seq in the store (0 for a new one)
  std::vector<std::string> records;  // first_seq, first_seq + 1, ..., in order
};

// Reads every record still in the journal of the store at `path`: from seq 1,
// or, when the journal was compacted behind a snapshot, from just after the
// newest snapshot (then first_seq > 1 and the earlier records are gone). The
// file must exist. Opens the journal as its writer (taking its lock) and
// closes it again: pass a copy of a store that a server has open. Errors as
// Store::Open (STORE_UNAVAILABLE for a missing file, STORE_LOCKED, ...).
absl::StatusOr<JournalRecords> ReadJournalRecords(const std::string& path);

}  // namespace boxoffice
