// Journal: a durable, append-only log of opaque records in one SQLite file.
//
// The engine is a deterministic state machine, so it is made durable by
// recording its commands: recovery is the latest snapshot plus a replay of
// the records after it. The journal knows nothing about commands; a record is
// bytes, numbered by a sequence (1, 2, 3, ...) in the order of Append.
//
// Group commit: Append only copies the record into an in-memory buffer under
// a mutex and never waits for I/O. One writer thread repeatedly takes what has
// accumulated and writes it as one row (a *group*) in one SQLite transaction,
// then advances durable_seq() and wakes WaitDurable callers. Many appenders
// therefore share each commit (and its fsync) instead of paying one each.
//
// On disk (SQLite, WAL mode, format version kJournalFormatVersion):
//   meta(key TEXT PRIMARY KEY, value INTEGER)   'format_version', 'compacted_seq'
//   journal_groups(first_seq INTEGER PRIMARY KEY, last_seq, record_count,
//                  checksum, data BLOB)
//       data     = record_count × (LEB128 varint length, record bytes)
//       checksum = boxoffice::Digest of (first_seq, record_count, data), as a
//                  signed 64-bit integer
//   snapshots(seq INTEGER PRIMARY KEY, checksum, data BLOB)
//       checksum = boxoffice::Digest of (seq, data)
// Only one writer may hold a store: Open takes an exclusive flock on
// "<path>.lock" (released when the process exits, even by SIGKILL). Other
// SQLite connections may read the file at any time (WAL readers never block
// the writer).
//
// Errors are absl::Status codes chosen by what the caller should do next,
// with the path in the message. A condition that has a stable code of its own
// (errors.h) carries it from where it is detected, so no caller ever reads the
// message to tell conditions apart:
//   kInvalidArgument     bad options or arguments            INVALID_ARGUMENT
//   kFailedPrecondition  another writer holds the lock       STORE_LOCKED
//                        a newer or unknown format version   STORE_VERSION_UNSUPPORTED
//                        the journal is closed               STORE_CLOSED
//   kDataLoss            a checksum mismatch or damage that  DATA_LOSS
//                        is not a torn tail
// The rest carry no stable code (the Store reports each as STORE_UNAVAILABLE):
//   kNotFound            the directory of `path` does not exist
//   kPermissionDenied    the directory or file is not writable
//   kFailedPrecondition  not a directory, not a boxoffice store, or the
//                        records asked for were compacted away
//   kResourceExhausted   the disk (or SQLite's size limit) is full
//   kUnavailable         an I/O error or a busy file; reopen and retry
//   kInternal            anything else SQLite reports
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boxoffice/types.h"

struct sqlite3;
struct sqlite3_stmt;

namespace boxoffice {

// The on-disk format this build reads and writes. A file with another
// version is refused, never rewritten.
inline constexpr int64_t kJournalFormatVersion = 1;

// What a group commit promises once WaitDurable returns (SQLite's
// PRAGMA synchronous in WAL mode).
enum class Durability : uint8_t {
  // synchronous=FULL: the WAL is fsynced at every group commit. A process
  // crash, an OS crash or a power loss loses nothing acknowledged (given a
  // disk that honours fsync). Slowest: one fsync per group.
  kFull = 0,
  // synchronous=NORMAL: fsync only at checkpoints. A process crash (SIGKILL)
  // loses nothing acknowledged, because committed groups are already in the
  // OS. An OS crash or power loss may lose the most recent acknowledged
  // groups (the file rolls back to an earlier commit); it is never corrupted.
  kNormal = 1,
  // synchronous=OFF: no fsync at all. A process crash loses nothing
  // acknowledged. An OS crash or power loss may lose recent groups and may
  // corrupt the file (Open or Read then report an error). For simulations.
  kOff = 2,
};

// The largest JournalOptions::group_commit_interval.
inline constexpr absl::Duration kGroupCommitIntervalMax = absl::Seconds(1);
// OK for an interval in 0 ..= kGroupCommitIntervalMax, else kInvalidArgument
// naming the bounds and the value.
absl::Status CheckGroupCommitInterval(absl::Duration interval);

// "full", "normal", "off".
absl::string_view ToString(Durability d);
// Parses "full", "normal" or "off"; kInvalidArgument otherwise.
absl::StatusOr<Durability> ParseDurability(absl::string_view name);

struct JournalOptions {
  std::string path;  // the SQLite file; its directory must exist and be writable
  Durability durability = Durability::kFull;
  // Limits on one group (one row, one transaction). A record larger than
  // group_bytes_max is refused by Append (precondition, asserted).
  int64_t group_records_max = 65536;  // 1 ..= 16 Mi records
  int64_t group_bytes_max = 8 << 20;  // 1 ..= 256 MiB of encoded records
  // The shortest time from the start of one group commit to the start of the
  // next (0 ..= kGroupCommitIntervalMax; 0: a group is written as soon as the
  // writer is free). Records that arrive sooner wait and join one larger group:
  // under a steady stream of small groups it caps the fsyncs at one per
  // interval, at the cost of up to one interval of latency. A record arriving
  // after a quiet interval is written at once, and so is what Close or
  // SaveSnapshot waits for, and a group that another full group follows.
  // MySQL's binlog_group_commit_sync_delay and PostgreSQL's commit_delay,
  // without the wait when nothing came recently.
  absl::Duration group_commit_interval = absl::ZeroDuration();
};

// What Read saw, for logging and for tests.
struct ReadStats {
  int64_t groups_read = 0;   // valid groups visited (including ones wholly <= after)
  int64_t records_read = 0;  // records passed to the callback
  Seq last_seq = 0;          // the last seq passed to the callback (`after` if none)
  // A corrupt LAST group is a torn tail: it is skipped (none of its records
  // are delivered), counted here and logged to stderr. Its seq range is as
  // stored, which may itself be damaged. The next Append reuses those seqs,
  // and the first group written after Open deletes the torn row.
  int64_t torn_groups_skipped = 0;  // 0 or 1
  Seq torn_first_seq = 0;
  Seq torn_last_seq = 0;
};

// A snapshot blob of state as of `seq` (every record <= seq applied).
struct Snapshot {
  Seq seq = 0;
  std::string bytes;
};

class Journal {
 public:
  using RecordFn = std::function<absl::Status(Seq seq, absl::string_view record)>;

  // Opens or creates the store at options.path (creating the file and schema
  // when the file is missing or empty), switches it to WAL mode and starts
  // the writer thread. appended_seq() and durable_seq() start at the last
  // sequence stored (0 for a new store). Errors: see the file comment; a
  // refused file is left as it was.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const JournalOptions& options);

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  // Calls Close(); a failure is logged to stderr.
  ~Journal();

  // Buffers `record` (copied) and returns its sequence number, one more than
  // the previous Append's. Thread-safe; never waits for I/O (only for the
  // buffer's mutex). Precondition: record.size() <= group_bytes_max. After
  // Close or a writer failure the record is dropped: its seq never becomes
  // durable and WaitDurable(seq) reports why.
  Seq Append(absl::string_view record);

  // Blocks until every record <= seq is committed per the durability mode.
  // OK at once for seq <= durable_seq(). Errors: kInvalidArgument for
  // seq > appended_seq() (it could never complete); the writer's error if a
  // group commit failed (disk full, I/O error) — every waiter is woken with
  // it, never left hanging; kFailedPrecondition if the journal was closed
  // before seq was written.
  absl::Status WaitDurable(Seq seq);

  // WaitDurable without blocking: true once every record <= seq is committed,
  // false while it may still be; WaitDurable's errors when it never will be.
  absl::StatusOr<bool> PollDurable(Seq seq);

  // A new eventfd (non-blocking, close-on-exec) that the journal signals after
  // every group commit, and when the writer fails or the journal closes, so that
  // an event loop watching it waits for durability without a thread of its own:
  // on a wake-up it reads the fd and calls PollDurable. The journal owns the fd:
  // RemoveDurableListener closes it, and so does the destructor.
  // kStoreUnavailable when the system refuses a new eventfd.
  absl::StatusOr<int> AddDurableListener();
  void RemoveDurableListener(int fd);

  Seq appended_seq() const { return appended_seq_.load(std::memory_order_acquire); }
  Seq durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  // OK until a group commit fails; then that failure (every later record is dropped).
  absl::Status writer_status();

  // Calls fn(seq, record) for every committed record with seq > after, in
  // order, stopping at (and returning) the first non-OK status fn returns.
  // Each group is verified (checksum, encoding, seq continuity) before any of
  // its records is delivered. A corrupt last group is skipped and reported in
  // *stats and on stderr; a corrupt group with groups after it is kDataLoss.
  // kFailedPrecondition if records after `after` were compacted away (start
  // from LatestSnapshot instead). Uses its own SQLite connection, so it may
  // run while appends continue, and fn may call Append and WaitDurable (but
  // not Close, Read or LatestSnapshot).
  absl::Status Read(Seq after, const RecordFn& fn, ReadStats* stats = nullptr);

  // Stores `bytes` as the snapshot of state at `seq` (replacing one at the
  // same seq), checksummed, after waiting until `seq` is durable, so that a
  // snapshot is never ahead of the journal. kInvalidArgument for seq < 0 or
  // seq > appended_seq(); WaitDurable's errors.
  absl::Status SaveSnapshot(Seq seq, absl::string_view bytes);

  // The newest snapshot whose checksum verifies (a corrupt newer one is
  // skipped with a line on stderr, so an older valid one wins), or nullopt.
  absl::StatusOr<std::optional<Snapshot>> LatestSnapshot();

  // Deletes the groups whose records are all <= upto and every snapshot
  // older than the newest valid one. kFailedPrecondition unless a valid
  // snapshot at seq >= upto exists (compaction must never lose state).
  // Sequence numbers keep counting from where they were.
  absl::Status Compact(Seq upto);

  // Writes everything appended so far, stops the writer thread and closes the
  // file and the lock. Idempotent; returns the writer's error if a commit
  // failed. Read, SaveSnapshot, LatestSnapshot and Compact then return
  // kFailedPrecondition.
  absl::Status Close();

  const std::string& path() const { return options_.path; }
  Durability durability() const { return options_.durability; }

 private:
  // Records appended but not yet handed to the writer: the future group.
  struct PendingGroup {
    Seq first_seq = 0;
    int64_t record_count = 0;
    std::string data;  // (varint length, bytes) per record
  };
  struct StmtDeleter {
    void operator()(sqlite3_stmt* s) const;
  };
  struct DbDeleter {
    void operator()(sqlite3* db) const;
  };
  using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;
  using DbPtr = std::unique_ptr<sqlite3, DbDeleter>;

  explicit Journal(const JournalOptions& options);
  // Open's steps, in order; each refuses a file before the next touches it.
  absl::Status Init();
  absl::Status CheckLocation() const;       // the directory and the file, before SQLite
  absl::Status LockWriter();                // the flock on "<path>.lock" (lock_fd_)
  absl::Status OpenWriteConnection();       // db_
  absl::StatusOr<bool> CheckFormat() const;  // true for an empty (new) file; only reads
  absl::Status SetPragmas() const;          // WAL, synchronous, WAL size limit
  absl::Status CreateSchema() const;        // the tables of a new store
  absl::Status FindLastSeq();               // appended/durable/compacted seq, torn tail
  absl::Status PrepareStatements();         // the group commit's statements
  absl::Status OpenReadConnection();        // reader_
  // SQL on the write connection, for Open's steps.
  absl::Status Prepare(const char* sql, StmtPtr* out) const;
  absl::StatusOr<std::optional<int64_t>> QueryInt(const char* sql) const;  // nullopt: no row
  absl::Status Exec(const char* sql) const;
  absl::Status WriteGroup(const PendingGroup& group);
  void WriterLoop();
  absl::Status SqlError(sqlite3* db, int rc, absl::string_view what) const;
  absl::Status ClosedError() const;
  // Under mu_: OK once seq is durable, the reason when it never will be, nullopt
  // while it may still be (seq <= appended_seq).
  std::optional<absl::Status> DurableStateLocked(Seq seq) const;
  void NotifyDurableListeners();

  const JournalOptions options_;
  int lock_fd_ = -1;

  // Guards the buffer, the sequence counters' updates and the writer state.
  std::mutex mu_;
  std::condition_variable work_cv_;     // the writer waits for pending groups
  std::condition_variable durable_cv_;  // WaitDurable waits for durable_seq_
  std::deque<PendingGroup> pending_;
  std::vector<std::string> spare_buffers_;  // reused group buffers
  bool writer_idle_ = false;
  bool writer_spacing_ = false;  // waiting out group_commit_interval (journal.h)
  bool hurry_ = false;           // SaveSnapshot waits: write the pending group now
  std::chrono::steady_clock::time_point last_commit_start_{};
  bool closing_ = false;
  Seq closing_seq_ = 0;  // appended_seq when Close began: later seqs are never written
  absl::Status writer_status_;  // the first failed commit; then nothing more is written
  std::atomic<bool> writer_failed_{false};  // writer_status_ is not OK (read without mu_)
  std::atomic<Seq> appended_seq_{0};
  std::atomic<Seq> durable_seq_{0};
  std::atomic<Seq> compacted_seq_{0};
  std::thread writer_;

  // The eventfds signalled after each group commit (AddDurableListener); the
  // writer holds the mutex while it writes, so a removed fd is never written to.
  std::mutex listeners_mu_;
  std::vector<int> listeners_;

  // The write connection: used by the writer thread, SaveSnapshot and Compact.
  std::mutex db_mu_;
  DbPtr db_;
  StmtPtr begin_, commit_, rollback_, insert_group_, purge_torn_, save_snapshot_;
  // A torn last group found by Open (the row's first_seq): deleted in the
  // same transaction as the first new group, whose seqs replace its seqs.
  std::optional<Seq> torn_first_seq_;

  // The read connection: Read and LatestSnapshot.
  std::mutex read_mu_;
  DbPtr reader_;

  std::mutex close_mu_;
  bool closed_ = false;
  absl::Status close_status_;
};

}  // namespace boxoffice
