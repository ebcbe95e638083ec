// Tests of where the store's error codes come from: the journal gives each
// condition that has a stable code (STORE_LOCKED, STORE_VERSION_UNSUPPORTED,
// STORE_CLOSED, DATA_LOSS) that code where it detects it, and the Store gives
// STORE_UNAVAILABLE to what the OS or SQLite refused. No code depends on the
// message text: a path that happens to contain "closed", "format version" or
// "already open for writing" changes nothing.
#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "boxoffice/errors.h"
#include "boxoffice/journal.h"
#include "boxoffice/store.h"

namespace boxoffice {
namespace {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it.
struct ScratchDir {
  ScratchDir() {
    char name[] = "/tmp/boxoffice-store-errors-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    root = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  // `name` under the scratch directory, creating the directories before it.
  std::string Path(const std::string& name) const {
    const fs::path p = fs::path(root) / name;
    fs::create_directories(p.parent_path());
    return p.string();
  }
  std::string root;
};

void RunSql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

JournalOptions JournalAt(const std::string& path) {
  JournalOptions o;
  o.path = path;
  o.durability = Durability::kOff;
  return o;
}

absl::Status OpenStore(const std::string& path) {
  StoreOptions o;
  o.path = path;
  o.durability = Durability::kOff;
  o.snapshot_every_records = 0;
  return Store::Open(o).status();
}

// A store with one snapshot, closed.
void MakeStore(const std::string& path) {
  StoreOptions o;
  o.path = path;
  o.durability = Durability::kOff;
  o.snapshot_every_records = 0;
  auto store = Store::Open(o);
  REQUIRE(store.ok());
  REQUIRE((*store)->Close().ok());
}

// Keeps the status class the journal documents and adds the stable code.
void CheckCode(const absl::Status& s, absl::StatusCode status_code, ErrorCode code) {
  CHECK(s.code() == status_code);
  CHECK(HasErrorCode(s));
  CHECK(GetErrorInfo(GetErrorCode(s)).name == GetErrorInfo(code).name);
}

TEST_CASE("the journal gives a store condition its code where it detects it", "[store]") {
  ScratchDir dir;
  const std::string path = dir.Path("store.db");
  auto first = Journal::Open(JournalAt(path));
  REQUIRE(first.ok());
  CheckCode(Journal::Open(JournalAt(path)).status(), absl::StatusCode::kFailedPrecondition,
            ErrorCode::kStoreLocked);

  const Seq seq = (*first)->Append("written by Close");
  REQUIRE((*first)->Close().ok());
  CheckCode((*first)->LatestSnapshot().status(), absl::StatusCode::kFailedPrecondition,
            ErrorCode::kStoreClosed);
  CheckCode((*first)->Read(0, [](Seq, absl::string_view) { return absl::OkStatus(); }),
            absl::StatusCode::kFailedPrecondition, ErrorCode::kStoreClosed);
  CheckCode((*first)->Compact(0), absl::StatusCode::kFailedPrecondition, ErrorCode::kStoreClosed);
  const Seq unwritten = (*first)->Append("never written");
  CHECK(unwritten == seq + 1);
  CheckCode((*first)->WaitDurable(unwritten), absl::StatusCode::kFailedPrecondition,
            ErrorCode::kStoreClosed);
  CheckCode((*first)->WaitDurable(unwritten + 1), absl::StatusCode::kInvalidArgument,
            ErrorCode::kInvalidArgument);

  RunSql(path, "UPDATE meta SET value = 99 WHERE key = 'format_version'");
  CheckCode(Journal::Open(JournalAt(path)).status(), absl::StatusCode::kFailedPrecondition,
            ErrorCode::kStoreVersionUnsupported);
  RunSql(path, "UPDATE meta SET value = 0 WHERE key = 'format_version'");
  CheckCode(Journal::Open(JournalAt(path)).status(), absl::StatusCode::kFailedPrecondition,
            ErrorCode::kStoreVersionUnsupported);
  RunSql(path, "UPDATE meta SET value = 1 WHERE key = 'format_version'; DROP TABLE snapshots");
  CheckCode(Journal::Open(JournalAt(path)).status(), absl::StatusCode::kDataLoss,
            ErrorCode::kDataLoss);

  // What the OS refused keeps its plain status: the store names it.
  const absl::Status missing = Journal::Open(JournalAt(dir.root + "/none/store.db")).status();
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK_FALSE(HasErrorCode(missing));
}

TEST_CASE("Store::Open reports each condition with its code, whatever the path says",
          "[store]") {
  ScratchDir dir;
  CHECK(GetErrorCode(OpenStore(dir.root + "/none/store.db")) == ErrorCode::kStoreUnavailable);

  // A file where a directory should be, under a directory named "closed".
  { std::ofstream(dir.Path("closed/file")) << "x"; }
  const absl::Status not_a_dir = OpenStore(dir.Path("closed/file") + "/store.db");
  CHECK(not_a_dir.message().find("closed") != absl::string_view::npos);
  CHECK(GetErrorCode(not_a_dir) == ErrorCode::kStoreUnavailable);

  // Foreign SQLite files in directories whose names other codes' messages contain.
  for (const char* name : {"format version", "already open for writing", "closed"}) {
    const std::string foreign = dir.Path(std::string(name) + "/foreign.db");
    RunSql(foreign, "CREATE TABLE users(id INTEGER)");
    const absl::Status s = OpenStore(foreign);
    CHECK(s.message().find(name) != absl::string_view::npos);
    CHECK(GetErrorCode(s) == ErrorCode::kStoreUnavailable);
  }

  const std::string path = dir.Path("closed/store.db");
  MakeStore(path);
  {
    StoreOptions o;
    o.path = path;
    o.snapshot_every_records = 0;
    auto open = Store::Open(o);
    REQUIRE(open.ok());
    CHECK(GetErrorCode(OpenStore(path)) == ErrorCode::kStoreLocked);
    CHECK(GetErrorCode(ReadJournalRecords(path).status()) == ErrorCode::kStoreLocked);
    REQUIRE((*open)->Close().ok());
    CHECK(GetErrorCode((*open)->Snapshot()) == ErrorCode::kStoreClosed);
  }
  REQUIRE(ReadJournalRecords(path).ok());
  RunSql(path, "UPDATE meta SET value = 99 WHERE key = 'format_version'");
  CHECK(GetErrorCode(OpenStore(path)) == ErrorCode::kStoreVersionUnsupported);
  CHECK(GetErrorCode(ReadJournalRecords(path).status()) == ErrorCode::kStoreVersionUnsupported);
  RunSql(path, "UPDATE meta SET value = 1 WHERE key = 'format_version'; DROP TABLE journal_groups");
  CHECK(GetErrorCode(OpenStore(path)) == ErrorCode::kDataLoss);
  CHECK(GetErrorCode(ReadJournalRecords(dir.root + "/none.db").status()) ==
        ErrorCode::kStoreUnavailable);
}

}  // namespace
}  // namespace boxoffice
