// Journal: see journal.h for the format, the group commit and the errors.
#include "boxoffice/journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "boxoffice/assert.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"

namespace boxoffice {
namespace {

constexpr int64_t kGroupRecordsLimit = int64_t{1} << 24;
constexpr int64_t kGroupBytesLimit = int64_t{256} << 20;
// Long enough to outwait a catalog rewrite (catalog.h) holding the write lock.
constexpr int kBusyTimeoutMs = 120'000;
// After a checkpoint the WAL file is truncated back to at most this size.
constexpr int64_t kWalSizeLimitBytes = int64_t{64} << 20;
constexpr size_t kSpareBuffersMax = 2;

// The schema of format version 1 (see journal.h).
constexpr const char* kCreateSchema =
    "CREATE TABLE IF NOT EXISTS meta("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS journal_groups("
    "  first_seq INTEGER PRIMARY KEY,"
    "  last_seq INTEGER NOT NULL,"
    "  record_count INTEGER NOT NULL,"
    "  checksum INTEGER NOT NULL,"
    "  data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS snapshots("
    "  seq INTEGER PRIMARY KEY,"
    "  checksum INTEGER NOT NULL,"
    "  data BLOB NOT NULL);";

std::string ErrnoText(int err) {
  char buf[256];
  // GNU strerror_r: returns a pointer to the message (maybe not buf).
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads one (varint length, bytes) record at *p; false if it does not fit.
bool NextRecord(const char** p, const char* end, absl::string_view* record) {
  uint64_t len = 0;
  for (int shift = 0;; shift += 7) {
    if (*p == end || shift > 63) return false;
    const auto byte = static_cast<uint8_t>(**p);
    ++*p;
    len |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (len > static_cast<uint64_t>(end - *p)) return false;
  *record = absl::string_view(*p, static_cast<size_t>(len));
  *p += len;
  return true;
}

int64_t GroupChecksum(Seq first_seq, int64_t record_count, absl::string_view data) {
  Digest d;
  d.Mix(first_seq);
  d.Mix(record_count);
  d.Mix(data);
  return static_cast<int64_t>(d.value());
}

int64_t SnapshotChecksum(Seq seq, absl::string_view data) {
  Digest d;
  d.Mix(seq);
  d.Mix(data);
  return static_cast<int64_t>(d.value());
}

// One journal_groups row as read back.
struct GroupRow {
  Seq first_seq = 0;
  Seq last_seq = 0;
  int64_t record_count = 0;
  int64_t checksum = 0;
  bool data_is_blob = false;
  absl::string_view data;
};

absl::string_view ColumnBlob(sqlite3_stmt* s, int col) {
  const void* p = sqlite3_column_blob(s, col);
  const int n = sqlite3_column_bytes(s, col);
  if (p == nullptr || n <= 0) return absl::string_view();
  return absl::string_view(static_cast<const char*>(p), static_cast<size_t>(n));
}

// Columns: first_seq, last_seq, record_count, checksum, data.
GroupRow ReadGroupRow(sqlite3_stmt* s) {
  GroupRow g;
  g.first_seq = sqlite3_column_int64(s, 0);
  g.last_seq = sqlite3_column_int64(s, 1);
  g.record_count = sqlite3_column_int64(s, 2);
  g.checksum = sqlite3_column_int64(s, 3);
  g.data = ColumnBlob(s, 4);
  g.data_is_blob = sqlite3_column_type(s, 4) == SQLITE_BLOB;
  return g;
}

// Why `g` is not a valid group, or "" if it is: its seq range must match its
// count, its checksum its contents, and its data must hold exactly
// record_count records.
std::string CheckGroup(const GroupRow& g) {
  Seq span = 0;
  if (g.record_count < 1 || g.first_seq < 1 || g.last_seq < g.first_seq ||
      __builtin_sub_overflow(g.last_seq, g.first_seq, &span) || span != g.record_count - 1) {
    return absl::StrCat("its seq range ", g.first_seq, "..", g.last_seq, " does not match its ",
                        g.record_count, " records");
  }
  if (!g.data_is_blob) return "its data is not a blob";
  if (GroupChecksum(g.first_seq, g.record_count, g.data) != g.checksum) {
    return "checksum mismatch";
  }
  const char* p = g.data.data();
  const char* end = p + g.data.size();
  absl::string_view record;
  for (int64_t i = 0; i < g.record_count; ++i) {
    if (!NextRecord(&p, end, &record)) return "its records overrun the data";
  }
  if (p != end) return "bytes after its last record";
  return "";
}

// Binds `bytes` as a blob that SQLite does not copy (it outlives the step).
int BindBlob(sqlite3_stmt* s, int col, absl::string_view bytes) {
  if (bytes.empty()) return sqlite3_bind_zeroblob(s, col, 0);
  return sqlite3_bind_blob64(s, col, bytes.data(), static_cast<sqlite3_uint64>(bytes.size()),
                             SQLITE_STATIC);
}

}  // namespace

absl::string_view ToString(Durability d) {
  switch (d) {
    case Durability::kFull:
      return "full";
    case Durability::kNormal:
      return "normal";
    case Durability::kOff:
      return "off";
  }
  return "unknown";
}

absl::StatusOr<Durability> ParseDurability(absl::string_view name) {
  for (auto d : {Durability::kFull, Durability::kNormal, Durability::kOff}) {
    if (name == ToString(d)) return d;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("durability must be full, normal or off, got '", name, "'"));
}

void Journal::StmtDeleter::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
void Journal::DbDeleter::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Journal::Journal(const JournalOptions& options) : options_(options) {}

Journal::~Journal() {
  bool closed = false;
  {
    std::lock_guard<std::mutex> lock(close_mu_);
    closed = closed_;  // Close already returned its status to the caller
  }
  if (!closed) {
    const absl::Status s = Close();
    if (!s.ok()) {
      std::fprintf(stderr, "boxoffice: journal %s: closed with an error: %s\n",
                   options_.path.c_str(), s.ToString().c_str());
    }
  }
  std::lock_guard<std::mutex> lock(listeners_mu_);
  for (int fd : listeners_) ::close(fd);
}

absl::Status CheckGroupCommitInterval(absl::Duration interval) {
  if (interval >= absl::ZeroDuration() && interval <= kGroupCommitIntervalMax) {
    return absl::OkStatus();
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("group_commit_interval must be in 0..",
                                absl::FormatDuration(kGroupCommitIntervalMax), ", got ",
                                absl::FormatDuration(interval)));
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options) {
  if (options.path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "journal path must not be empty");
  }
  if (options.group_records_max < 1 || options.group_records_max > kGroupRecordsLimit) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("group_records_max must be in 1..", kGroupRecordsLimit,
                                  ", got ", options.group_records_max));
  }
  if (options.group_bytes_max < 1 || options.group_bytes_max > kGroupBytesLimit) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("group_bytes_max must be in 1..", kGroupBytesLimit, ", got ",
                                  options.group_bytes_max));
  }
  if (absl::Status s = CheckGroupCommitInterval(options.group_commit_interval); !s.ok()) {
    return s;
  }
  std::unique_ptr<Journal> journal(new Journal(options));
  absl::Status s = journal->Init();
  if (!s.ok()) return s;  // the destructor releases what Init took
  return journal;
}

absl::Status Journal::SqlError(sqlite3* db, int rc, absl::string_view what) const {
  const std::string msg =
      absl::StrCat("journal ", options_.path, ": ", what, ": ",
                   db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc), " (SQLite error ", rc,
                   ")");
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CORRUPT:
      return MakeError(ErrorCode::kDataLoss, msg);
    case SQLITE_NOTADB:
      return absl::FailedPreconditionError(absl::StrCat(msg, "; not a boxoffice store"));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Journal::ClosedError() const {
  return MakeError(ErrorCode::kStoreClosed, absl::StrCat("journal ", options_.path, " is closed"));
}

absl::Status Journal::Init() {
  // Each step refuses a file it cannot use before the next touches it, so a
  // refused file is left as it was.
  if (absl::Status s = CheckLocation(); !s.ok()) return s;
  if (absl::Status s = LockWriter(); !s.ok()) return s;
  if (absl::Status s = OpenWriteConnection(); !s.ok()) return s;
  absl::StatusOr<bool> is_new = CheckFormat();
  if (!is_new.ok()) return is_new.status();
  if (absl::Status s = SetPragmas(); !s.ok()) return s;
  if (*is_new) {
    if (absl::Status s = CreateSchema(); !s.ok()) return s;
  }
  if (absl::Status s = FindLastSeq(); !s.ok()) return s;
  if (absl::Status s = PrepareStatements(); !s.ok()) return s;
  if (absl::Status s = OpenReadConnection(); !s.ok()) return s;
  writer_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

// The directory and the file are checked before SQLite sees them, so that each
// problem gets its own message rather than SQLite's "unable to open database
// file".
absl::Status Journal::CheckLocation() const {
  const std::string& path = options_.path;
  const std::string dir = Dirname(path);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("journal ", path, ": directory ", dir, " does not exist"));
    }
    if (err == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(
          "journal ", path, ": ", dir, " is not a directory (a component of it is a file)"));
    }
    if (err == EACCES) {
      return absl::PermissionDeniedError(
          absl::StrCat("journal ", path, ": directory ", dir, " is not accessible"));
    }
    return absl::UnavailableError(
        absl::StrCat("journal ", path, ": cannot stat directory ", dir, ": ", ErrnoText(err)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("journal ", path, ": ", dir, " is not a directory"));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "journal ", path, ": directory ", dir, " is not writable (", ErrnoText(errno), ")"));
  }
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("journal ", path, " is a directory, not a file"));
    }
    if (::access(path.c_str(), R_OK | W_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("journal ", path, " is not writable (", ErrnoText(errno), ")"));
    }
  }
  return absl::OkStatus();
}

// One writer per store: an exclusive flock on "<path>.lock", released by the
// kernel when the descriptor closes or the process dies. The holder's pid is
// written into the lock file for the message another opener sees.
absl::Status Journal::LockWriter() {
  const std::string& path = options_.path;
  const std::string lock_path = path + ".lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    const int err = errno;
    const std::string msg =
        absl::StrCat("journal ", path, ": cannot open lock file ", lock_path, ": ", ErrnoText(err));
    if (err == EACCES || err == EROFS || err == EPERM) return absl::PermissionDeniedError(msg);
    return absl::UnavailableError(msg);
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      char buf[32] = {};
      const ssize_t n = ::pread(lock_fd_, buf, sizeof(buf) - 1, 0);
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      if (holder == std::to_string(::getpid())) holder += ", this process";
      return MakeError(ErrorCode::kStoreLocked,
                       absl::StrCat("journal ", path, " is already open for writing (lock ",
                                    lock_path, " is held by process ", holder,
                                    "); close the other writer first"));
    }
    return absl::UnavailableError(
        absl::StrCat("journal ", path, ": cannot lock ", lock_path, ": ", ErrnoText(err)));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  // The pid only improves the message another opener sees; failures are harmless.
  if (::ftruncate(lock_fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(lock_fd_, pid.data(), pid.size(), 0);
  }
  return absl::OkStatus();
}

absl::Status Journal::OpenWriteConnection() {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(options_.path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) return SqlError(raw, rc, "cannot open");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  return absl::OkStatus();
}

absl::Status Journal::Prepare(const char* sql, StmtPtr* out) const {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v3(db_.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  out->reset(s);
  if (rc != SQLITE_OK) return SqlError(db_.get(), rc, absl::StrCat("cannot prepare '", sql, "'"));
  return absl::OkStatus();
}

// Runs a statement that returns at most one integer; nullopt for no row or NULL.
absl::StatusOr<std::optional<int64_t>> Journal::QueryInt(const char* sql) const {
  StmtPtr s;
  if (absl::Status ps = Prepare(sql, &s); !ps.ok()) return ps;
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<int64_t>();
  if (rc != SQLITE_ROW) return SqlError(db_.get(), rc, absl::StrCat("cannot run '", sql, "'"));
  if (sqlite3_column_type(s.get(), 0) == SQLITE_NULL) return std::optional<int64_t>();
  if (sqlite3_column_type(s.get(), 0) != SQLITE_INTEGER) {
    return MakeError(ErrorCode::kDataLoss, absl::StrCat("journal ", options_.path, ": '", sql,
                                                        "' returned a non-integer"));
  }
  return std::optional<int64_t>(sqlite3_column_int64(s.get(), 0));
}

absl::Status Journal::Exec(const char* sql) const {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return SqlError(db_.get(), rc, absl::StrCat("cannot run '", sql, "'"));
  return absl::OkStatus();
}

// What is in the file: true for an empty one (a new store). Only reads, and
// refuses a file that is not a boxoffice store of this format version before
// anything writes to it.
absl::StatusOr<bool> Journal::CheckFormat() const {
  const std::string& path = options_.path;
  sqlite3* db = db_.get();
  {
    sqlite3_stmt* probe = nullptr;
    int rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &probe, nullptr);
    StmtPtr owned(probe);
    if (rc == SQLITE_OK) rc = sqlite3_step(probe);
    if (rc != SQLITE_ROW) return SqlError(db, rc, "cannot read the file's schema");
    if (sqlite3_column_int64(probe, 0) == 0) return true;
  }
  auto has_meta =
      QueryInt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  if (!has_meta.ok()) return has_meta.status();
  if (has_meta->value_or(0) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "journal ", path, " is a SQLite database but not a boxoffice store (no meta table)"));
  }
  auto version = QueryInt("SELECT value FROM meta WHERE key = 'format_version'");
  if (!version.ok()) return version.status();
  if (!version->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "journal ", path, " is not a boxoffice store (meta has no format_version)"));
  }
  const int64_t v = **version;
  if (v > kJournalFormatVersion) {
    return MakeError(ErrorCode::kStoreVersionUnsupported,
                     absl::StrCat("journal ", path, " has format version ", v,
                                  ", newer than this build supports (", kJournalFormatVersion,
                                  "); upgrade boxoffice to open it"));
  }
  if (v != kJournalFormatVersion) {
    return MakeError(ErrorCode::kStoreVersionUnsupported,
                     absl::StrCat("journal ", path, " has unknown format version ", v,
                                  " (this build reads version ", kJournalFormatVersion, ")"));
  }
  auto tables = QueryInt(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
      "name IN ('journal_groups', 'snapshots')");
  if (!tables.ok()) return tables.status();
  if (tables->value_or(0) != 2) {
    return MakeError(ErrorCode::kDataLoss,
                     absl::StrCat("journal ", path,
                                  " is damaged: the journal_groups or snapshots table is missing"));
  }
  return false;
}

// WAL mode (readers beside the writer), the durability mode and a bound on
// the WAL file's size.
absl::Status Journal::SetPragmas() const {
  {
    StmtPtr mode;
    if (absl::Status ps = Prepare("PRAGMA journal_mode = WAL", &mode); !ps.ok()) return ps;
    const int rc = sqlite3_step(mode.get());
    if (rc != SQLITE_ROW) return SqlError(db_.get(), rc, "cannot switch to WAL mode");
    const auto* m = reinterpret_cast<const char*>(sqlite3_column_text(mode.get(), 0));
    if (m == nullptr || std::strcmp(m, "wal") != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "journal ", options_.path, ": cannot switch to WAL mode (got '", m ? m : "", "')"));
    }
  }
  const char* sync_sql = "PRAGMA synchronous = FULL";
  if (options_.durability == Durability::kNormal) sync_sql = "PRAGMA synchronous = NORMAL";
  if (options_.durability == Durability::kOff) sync_sql = "PRAGMA synchronous = OFF";
  if (absl::Status s = Exec(sync_sql); !s.ok()) return s;
  return Exec(absl::StrCat("PRAGMA journal_size_limit = ", kWalSizeLimitBytes).c_str());
}

// The tables of a new store and its format version, in one transaction.
absl::Status Journal::CreateSchema() const {
  absl::Status s = Exec("BEGIN IMMEDIATE");
  if (!s.ok()) return s;
  s = Exec(kCreateSchema);
  if (s.ok()) {
    s = Exec(absl::StrCat("INSERT OR IGNORE INTO meta(key, value) VALUES "
                          "('format_version', ",
                          kJournalFormatVersion, "), ('compacted_seq', 0)")
                 .c_str());
  }
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    Exec("ROLLBACK").IgnoreError();
    return s;
  }
  return absl::OkStatus();
}

// Where the sequence continues: after the last valid group, a compaction or a
// snapshot, whichever is furthest. A damaged last group is a torn tail: Read
// reports it, and the first new group replaces it (torn_first_seq_).
absl::Status Journal::FindLastSeq() {
  auto compacted = QueryInt("SELECT value FROM meta WHERE key = 'compacted_seq'");
  if (!compacted.ok()) return compacted.status();
  auto snapshot_max = QueryInt("SELECT max(seq) FROM snapshots");
  if (!snapshot_max.ok()) return snapshot_max.status();
  Seq last_good = 0;
  {
    StmtPtr last;
    absl::Status s = Prepare(
        "SELECT first_seq, last_seq, record_count, checksum, data FROM journal_groups "
        "ORDER BY first_seq DESC LIMIT 2",
        &last);
    if (!s.ok()) return s;
    int rc = sqlite3_step(last.get());
    if (rc == SQLITE_ROW) {
      const GroupRow g = ReadGroupRow(last.get());
      if (CheckGroup(g).empty()) {
        last_good = g.last_seq;
      } else {
        torn_first_seq_ = g.first_seq;
        rc = sqlite3_step(last.get());
        if (rc == SQLITE_ROW) last_good = sqlite3_column_int64(last.get(), 1);
      }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return SqlError(db_.get(), rc, "cannot read the last journal group");
    }
  }
  const Seq compacted_seq = compacted->value_or(0);
  const Seq start = std::max({last_good, compacted_seq, snapshot_max->value_or(0), Seq{0}});
  compacted_seq_.store(compacted_seq);
  appended_seq_.store(start);
  durable_seq_.store(start);
  return absl::OkStatus();
}

// The write connection's statements, prepared once for every group commit.
absl::Status Journal::PrepareStatements() {
  const std::pair<const char*, StmtPtr*> statements[] = {
      {"BEGIN IMMEDIATE", &begin_},
      {"COMMIT", &commit_},
      {"ROLLBACK", &rollback_},
      {"INSERT INTO journal_groups(first_seq, last_seq, record_count, checksum, data) "
       "VALUES (?1, ?2, ?3, ?4, ?5)",
       &insert_group_},
      {"DELETE FROM journal_groups WHERE first_seq >= ?1", &purge_torn_},
      {"INSERT OR REPLACE INTO snapshots(seq, checksum, data) VALUES (?1, ?2, ?3)",
       &save_snapshot_},
  };
  for (const auto& [sql, stmt] : statements) {
    if (absl::Status s = Prepare(sql, stmt); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The read connection, so that Read runs beside the writer (WAL readers see
// the last commit and never block it).
absl::Status Journal::OpenReadConnection() {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(options_.path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  reader_.reset(raw);
  if (rc != SQLITE_OK) return SqlError(raw, rc, "cannot open the read connection");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  return absl::OkStatus();
}

absl::Status Journal::writer_status() {
  if (!writer_failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  return writer_status_;
}

Seq Journal::Append(absl::string_view record) {
  BOXOFFICE_ASSERT(static_cast<int64_t>(record.size()) <= options_.group_bytes_max);
  bool wake = false;
  Seq seq = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = appended_seq_.load(std::memory_order_relaxed) + 1;
    appended_seq_.store(seq, std::memory_order_release);
    if (closing_ || !writer_status_.ok()) return seq;  // never written; WaitDurable says why
    const size_t encoded = VarintSize(record.size()) + record.size();
    if (pending_.empty() || pending_.back().record_count >= options_.group_records_max ||
        static_cast<int64_t>(pending_.back().data.size() + encoded) > options_.group_bytes_max) {
      PendingGroup& g = pending_.emplace_back();
      g.first_seq = seq;
      if (!spare_buffers_.empty()) {
        g.data = std::move(spare_buffers_.back());
        spare_buffers_.pop_back();
      }
    }
    PendingGroup& g = pending_.back();
    BOXOFFICE_ASSERT(g.first_seq + g.record_count == seq);
    PutVarint(&g.data, record.size());
    g.data.append(record.data(), record.size());
    ++g.record_count;
    // A second group is ready to write at once, even within the commit interval.
    wake = writer_idle_ || (writer_spacing_ && pending_.size() > 1);
  }
  if (wake) work_cv_.notify_one();
  return seq;
}

absl::Status Journal::WaitDurable(Seq seq) {
  if (seq <= durable_seq()) return absl::OkStatus();
  std::unique_lock<std::mutex> lock(mu_);
  if (seq > appended_seq_.load(std::memory_order_relaxed)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("journal ", options_.path, ": cannot wait for seq ", seq,
                                  ", only ", appended_seq(), " records were appended"));
  }
  std::optional<absl::Status> state;
  durable_cv_.wait(lock, [&] { return (state = DurableStateLocked(seq)).has_value(); });
  return *state;
}

absl::StatusOr<bool> Journal::PollDurable(Seq seq) {
  if (seq <= durable_seq()) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (seq > appended_seq_.load(std::memory_order_relaxed)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("journal ", options_.path, ": cannot wait for seq ", seq,
                                  ", only ", appended_seq(), " records were appended"));
  }
  std::optional<absl::Status> state = DurableStateLocked(seq);
  if (!state) return false;
  if (!state->ok()) return *state;
  return true;
}

std::optional<absl::Status> Journal::DurableStateLocked(Seq seq) const {
  if (durable_seq_.load(std::memory_order_relaxed) >= seq) return absl::OkStatus();
  if (!writer_status_.ok()) return writer_status_;
  if (closing_ && seq > closing_seq_) {
    return MakeError(ErrorCode::kStoreClosed, absl::StrCat("journal ", options_.path,
                                                          " was closed before seq ", seq,
                                                          " was written"));
  }
  return std::nullopt;
}

absl::StatusOr<int> Journal::AddDurableListener() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    return MakeError(ErrorCode::kStoreUnavailable,
                     absl::StrCat("journal ", options_.path, ": eventfd: ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(listeners_mu_);
  listeners_.push_back(fd);
  return fd;
}

void Journal::RemoveDurableListener(int fd) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  auto it = std::find(listeners_.begin(), listeners_.end(), fd);
  if (it == listeners_.end()) return;  // not ours (or removed already): never close it
  listeners_.erase(it);
  ::close(fd);
}

void Journal::NotifyDurableListeners() {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  const uint64_t one = 1;
  for (int fd : listeners_) {
    // EAGAIN: the fd is full of earlier wake-ups, so it is readable anyway.
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);
  }
}

void Journal::WriterLoop() {
  for (;;) {
    PendingGroup group;
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_idle_ = true;
      work_cv_.wait(lock, [&] { return !pending_.empty() || closing_; });
      writer_idle_ = false;
      if (pending_.empty()) return;  // closing, and everything is written
      if (options_.group_commit_interval > absl::ZeroDuration()) {
        // Records arriving meanwhile join this group (journal.h).
        const auto next = last_commit_start_ + absl::ToChronoNanoseconds(
                                                   options_.group_commit_interval);
        writer_spacing_ = true;
        work_cv_.wait_until(lock, next,
                            [&] { return closing_ || hurry_ || pending_.size() > 1; });
        writer_spacing_ = false;
        hurry_ = false;
        last_commit_start_ = std::chrono::steady_clock::now();
      }
      group = std::move(pending_.front());
      pending_.pop_front();
    }
    const absl::Status s = WriteGroup(group);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) {
        const Seq last = group.first_seq + group.record_count - 1;
        BOXOFFICE_ASSERT(group.first_seq == durable_seq_.load(std::memory_order_relaxed) + 1);
        durable_seq_.store(last, std::memory_order_release);
      } else if (writer_status_.ok()) {
        // Nothing after a failed group may be written, or the journal would
        // have a hole: drop what is pending and fail every waiter.
        writer_status_ = s;
        writer_failed_.store(true, std::memory_order_release);
        pending_.clear();
        std::fprintf(stderr,
                     "boxoffice: journal %s: group commit of seqs %lld.. failed, no more "
                     "records will be written: %s\n",
                     options_.path.c_str(), static_cast<long long>(group.first_seq),
                     s.ToString().c_str());
      }
      if (spare_buffers_.size() < kSpareBuffersMax) {
        group.data.clear();
        spare_buffers_.push_back(std::move(group.data));
      }
    }
    durable_cv_.notify_all();
    NotifyDurableListeners();
  }
}

absl::Status Journal::WriteGroup(const PendingGroup& group) {
  const int64_t checksum = GroupChecksum(group.first_seq, group.record_count, group.data);
  const Seq last_seq = group.first_seq + group.record_count - 1;
  std::lock_guard<std::mutex> lock(db_mu_);
  sqlite3* db = db_.get();
  BOXOFFICE_ASSERT(db != nullptr);  // Close joins the writer before closing the file

  auto step = [&](sqlite3_stmt* stmt, absl::string_view what) -> absl::Status {
    const int rc = sqlite3_step(stmt);
    absl::Status st;
    if (rc != SQLITE_DONE) st = SqlError(db, rc, what);
    sqlite3_reset(stmt);
    return st;
  };
  absl::Status s = step(begin_.get(), "cannot begin a group commit");
  if (!s.ok()) return s;
  if (torn_first_seq_.has_value()) {
    sqlite3_bind_int64(purge_torn_.get(), 1, *torn_first_seq_);
    s = step(purge_torn_.get(), "cannot delete the torn last group");
  }
  if (s.ok()) {
    sqlite3_stmt* ins = insert_group_.get();
    sqlite3_bind_int64(ins, 1, group.first_seq);
    sqlite3_bind_int64(ins, 2, last_seq);
    sqlite3_bind_int64(ins, 3, group.record_count);
    sqlite3_bind_int64(ins, 4, checksum);
    BindBlob(ins, 5, group.data);
    s = step(ins, absl::StrCat("cannot write the group of seqs ", group.first_seq, "..", last_seq));
    sqlite3_clear_bindings(ins);
  }
  if (s.ok()) s = step(commit_.get(), "cannot commit a group");
  if (!s.ok()) {
    sqlite3_step(rollback_.get());
    sqlite3_reset(rollback_.get());
    return s;
  }
  torn_first_seq_.reset();
  return absl::OkStatus();
}

absl::Status Journal::Read(Seq after, const RecordFn& fn, ReadStats* stats) {
  if (after < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("Read: after must be >= 0, got ", after));
  }
  ReadStats local;
  ReadStats& st = stats != nullptr ? *stats : local;
  st = ReadStats();
  st.last_seq = after;
  if (after == std::numeric_limits<Seq>::max()) return absl::OkStatus();

  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3* db = reader_.get();
  if (db == nullptr) return ClosedError();
  // From the group holding after + 1 (or the first group after it) onwards;
  // one statement, so one consistent view of the file.
  const char* sql =
      "SELECT first_seq, last_seq, record_count, checksum, data FROM journal_groups "
      "WHERE first_seq >= coalesce((SELECT max(first_seq) FROM journal_groups "
      "WHERE first_seq <= ?1), ?1) ORDER BY first_seq";
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqlError(db, rc, "cannot prepare the journal read");
  sqlite3_bind_int64(raw, 1, after + 1);

  Seq expect = after + 1;  // the next seq to deliver
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const GroupRow g = ReadGroupRow(raw);
    const std::string damage = CheckGroup(g);
    if (!damage.empty()) {
      rc = sqlite3_step(raw);
      if (rc == SQLITE_ROW) {
        return MakeError(ErrorCode::kDataLoss,
                         absl::StrCat("journal ", options_.path, ": the group of seqs ",
                                      g.first_seq, "..", g.last_seq, " is damaged (", damage,
                                      ") and is not the last group"));
      }
      if (rc != SQLITE_DONE) break;
      st.torn_groups_skipped = 1;
      st.torn_first_seq = g.first_seq;
      st.torn_last_seq = g.last_seq;
      std::fprintf(stderr,
                   "boxoffice: journal %s: the last group (seqs %lld..%lld, %lld records) is "
                   "damaged (%s); ignoring it as a torn tail, the journal ends at seq %lld\n",
                   options_.path.c_str(), static_cast<long long>(g.first_seq),
                   static_cast<long long>(g.last_seq), static_cast<long long>(g.record_count),
                   damage.c_str(), static_cast<long long>(expect - 1));
      return absl::OkStatus();
    }
    ++st.groups_read;
    if (g.last_seq < expect) continue;  // wholly at or before `after`
    if (g.first_seq > expect) {
      if (expect == after + 1 && after < compacted_seq_.load()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "journal ", options_.path, ": records after seq ", after,
            " were compacted (the journal now starts at seq ", g.first_seq,
            "); start from the latest snapshot"));
      }
      return MakeError(ErrorCode::kDataLoss, absl::StrCat("journal ", options_.path, ": records ",
                                                          expect, "..", g.first_seq - 1,
                                                          " are missing"));
    }
    if (g.first_seq < expect && expect != after + 1) {
      return MakeError(ErrorCode::kDataLoss,
                       absl::StrCat("journal ", options_.path, ": the group of seqs ", g.first_seq,
                                    "..", g.last_seq, " overlaps the previous group"));
    }
    const char* p = g.data.data();
    const char* end = p + g.data.size();
    absl::string_view record;
    for (Seq seq = g.first_seq; seq <= g.last_seq; ++seq) {
      const bool ok = NextRecord(&p, end, &record);
      BOXOFFICE_ASSERT(ok);  // CheckGroup decoded the same bytes
      if (seq < expect) continue;
      absl::Status s = fn(seq, record);
      if (!s.ok()) return s;
      ++st.records_read;
      st.last_seq = seq;
    }
    expect = g.last_seq + 1;
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "cannot read the journal");
  return absl::OkStatus();
}

absl::Status Journal::SaveSnapshot(Seq seq, absl::string_view bytes) {
  if (seq < 0 || seq > appended_seq()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("SaveSnapshot: seq must be in 0..", appended_seq(), ", got ",
                                  seq));
  }
  {
    // A snapshot (periodic, or the store's Close) waits for nobody's group commit interval.
    std::lock_guard<std::mutex> lock(mu_);
    if (options_.group_commit_interval > absl::ZeroDuration() &&
        durable_seq_.load(std::memory_order_relaxed) < seq) {
      hurry_ = true;
    }
  }
  work_cv_.notify_one();
  absl::Status s = WaitDurable(seq);
  if (!s.ok()) return s;
  const int64_t checksum = SnapshotChecksum(seq, bytes);
  std::lock_guard<std::mutex> lock(db_mu_);
  sqlite3* db = db_.get();
  if (db == nullptr) return ClosedError();
  sqlite3_stmt* stmt = save_snapshot_.get();
  sqlite3_bind_int64(stmt, 1, seq);
  sqlite3_bind_int64(stmt, 2, checksum);
  BindBlob(stmt, 3, bytes);
  const int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) {
    s = SqlError(db, rc, absl::StrCat("cannot save the snapshot at seq ", seq));
  }
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return s;
}

absl::StatusOr<std::optional<Snapshot>> Journal::LatestSnapshot() {
  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3* db = reader_.get();
  if (db == nullptr) return ClosedError();
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT seq, checksum, data FROM snapshots ORDER BY seq DESC",
                              -1, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqlError(db, rc, "cannot prepare the snapshot read");
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    const Seq seq = sqlite3_column_int64(raw, 0);
    const absl::string_view data = ColumnBlob(raw, 2);
    if (sqlite3_column_type(raw, 2) == SQLITE_BLOB &&
        SnapshotChecksum(seq, data) == sqlite3_column_int64(raw, 1)) {
      return std::optional<Snapshot>(Snapshot{seq, std::string(data)});
    }
    std::fprintf(stderr,
                 "boxoffice: journal %s: the snapshot at seq %lld is damaged (checksum "
                 "mismatch); trying an older one\n",
                 options_.path.c_str(), static_cast<long long>(seq));
  }
  if (rc != SQLITE_DONE) return SqlError(db, rc, "cannot read the snapshots");
  return std::optional<Snapshot>();
}

absl::Status Journal::Compact(Seq upto) {
  if (upto < 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("Compact: upto must be >= 0, got ", upto));
  }
  std::lock_guard<std::mutex> lock(db_mu_);
  sqlite3* db = db_.get();
  if (db == nullptr) return ClosedError();

  auto run = [&](const char* sql, std::initializer_list<int64_t> args,
                 std::optional<Seq>* newest_valid) -> absl::Status {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return SqlError(db, rc, absl::StrCat("cannot prepare '", sql, "'"));
    int i = 1;
    for (int64_t a : args) sqlite3_bind_int64(raw, i++, a);
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      if (newest_valid == nullptr) continue;
      const Seq seq = sqlite3_column_int64(raw, 0);
      if (sqlite3_column_type(raw, 2) == SQLITE_BLOB &&
          SnapshotChecksum(seq, ColumnBlob(raw, 2)) == sqlite3_column_int64(raw, 1)) {
        *newest_valid = seq;
        break;
      }
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      return SqlError(db, rc, absl::StrCat("cannot run '", sql, "'"));
    }
    return absl::OkStatus();
  };

  absl::Status s = run("BEGIN IMMEDIATE", {}, nullptr);
  if (!s.ok()) return s;
  std::optional<Seq> keep;
  s = run("SELECT seq, checksum, data FROM snapshots ORDER BY seq DESC", {}, &keep);
  if (s.ok() && (!keep.has_value() || *keep < upto)) {
    s = absl::FailedPreconditionError(absl::StrCat(
        "journal ", options_.path, ": cannot compact up to seq ", upto,
        ": no valid snapshot at or after it (newest valid: ",
        keep.has_value() ? absl::StrCat(*keep) : std::string("none"), ")"));
  }
  if (s.ok()) {
    s = run("DELETE FROM journal_groups WHERE first_seq <= ?1 AND last_seq <= ?1", {upto},
            nullptr);
  }
  if (s.ok()) s = run("DELETE FROM snapshots WHERE seq < ?1", {*keep}, nullptr);
  if (s.ok()) {
    s = run("INSERT INTO meta(key, value) VALUES ('compacted_seq', ?1) "
            "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            {upto}, nullptr);
  }
  if (s.ok()) s = run("COMMIT", {}, nullptr);
  if (!s.ok()) {
    run("ROLLBACK", {}, nullptr).IgnoreError();
    return s;
  }
  if (upto > compacted_seq_.load()) compacted_seq_.store(upto);
  return absl::OkStatus();
}

absl::Status Journal::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  if (closed_) return close_status_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    closing_seq_ = appended_seq_.load(std::memory_order_relaxed);
  }
  work_cv_.notify_all();
  durable_cv_.notify_all();
  if (writer_.joinable()) writer_.join();  // it writes everything pending first
  {
    std::lock_guard<std::mutex> lock(read_mu_);
    reader_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(db_mu_);
    begin_.reset();
    commit_.reset();
    rollback_.reset();
    insert_group_.reset();
    purge_torn_.reset();
    save_snapshot_.reset();
    db_.reset();  // the last connection checkpoints the WAL into the file
  }
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    close_status_ = writer_status_;
  }
  durable_cv_.notify_all();
  NotifyDurableListeners();
  closed_ = true;
  return close_status_;
}

}  // namespace boxoffice
