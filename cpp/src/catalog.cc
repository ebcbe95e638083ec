// Catalog tables: see catalog.h for the schema and why they exist.
#include "boxoffice/catalog.h"

#include <sqlite3.h>

#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "boxoffice/errors.h"

namespace boxoffice {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS catalog_meta(key TEXT PRIMARY KEY NOT NULL, value INTEGER);
CREATE TABLE IF NOT EXISTS catalog_concerts(
  id INTEGER PRIMARY KEY, title TEXT NOT NULL, artist TEXT NOT NULL, venue TEXT NOT NULL,
  created_at_us INTEGER NOT NULL, opens_at_us INTEGER, queue_capacity INTEGER NOT NULL,
  admission_per_minute INTEGER, session_ttl_us INTEGER NOT NULL, hold_ttl_us INTEGER NOT NULL,
  max_seats_per_reservation INTEGER NOT NULL, max_seats_per_user INTEGER,
  release_on_payment_failure INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_schedules(
  id INTEGER PRIMARY KEY, concert_id INTEGER NOT NULL, starts_at_us INTEGER NOT NULL,
  seats_total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_seats(
  id INTEGER PRIMARY KEY, schedule_id INTEGER NOT NULL, label TEXT NOT NULL,
  section TEXT NOT NULL, row INTEGER NOT NULL, number INTEGER NOT NULL, grade TEXT NOT NULL,
  price INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_users(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
)sql";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

class Writer {
 public:
  explicit Writer(const std::string& path) : path_(path) {}

  absl::Status Open() {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK) return Error("open");
    sqlite3_busy_timeout(db_.get(), 5000);
    return Exec(kSchema);
  }
  absl::Status Exec(const char* sql) {
    if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(sql);
    return absl::OkStatus();
  }
  absl::StatusOr<Stmt> Prepare(const char* sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql, -1, &raw, nullptr) != SQLITE_OK) return Error(sql);
    return Stmt(raw);
  }
  // Binds `values` (int64, string or NULL) in order, steps once, resets.
  template <typename... T>
  absl::Status Insert(sqlite3_stmt* s, const T&... values) {
    int i = 0;
    (Bind(s, ++i, values), ...);
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return Error("insert");
    return absl::OkStatus();
  }

 private:
  static void Bind(sqlite3_stmt* s, int i, int64_t v) { sqlite3_bind_int64(s, i, v); }
  static void Bind(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  static void Bind(sqlite3_stmt* s, int i, const std::optional<int64_t>& v) {
    if (v.has_value()) {
      sqlite3_bind_int64(s, i, *v);
    } else {
      sqlite3_bind_null(s, i);
    }
  }
  absl::Status Error(absl::string_view what) {
    return MakeError(ErrorCode::kStoreUnavailable,
                     absl::StrCat("catalog of ", path_, ": ", what.substr(0, 60), ": ",
                                  db_ ? sqlite3_errmsg(db_.get()) : "cannot open"));
  }

  std::string path_;
  Db db_;
};

std::optional<int64_t> Optional(int64_t v, int64_t none) {
  return v == none ? std::nullopt : std::optional<int64_t>(v);
}

}  // namespace

absl::Status WriteCatalog(Engine& engine, const std::string& path, Seq journal_seq) {
  Writer w(path);
  if (absl::Status s = w.Open(); !s.ok()) return s;
  if (absl::Status s = w.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto body = [&]() -> absl::Status {
    for (const char* sql : {"DELETE FROM catalog_concerts", "DELETE FROM catalog_schedules",
                            "DELETE FROM catalog_seats", "DELETE FROM catalog_users",
                            "DELETE FROM catalog_meta"}) {
      if (absl::Status s = w.Exec(sql); !s.ok()) return s;
    }
    auto concert = w.Prepare("INSERT INTO catalog_concerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    auto schedule = w.Prepare("INSERT INTO catalog_schedules VALUES (?,?,?,?)");
    auto seat = w.Prepare("INSERT INTO catalog_seats VALUES (?,?,?,?,?,?,?,?,?)");
    auto user = w.Prepare("INSERT INTO catalog_users VALUES (?,?)");
    auto meta = w.Prepare("INSERT INTO catalog_meta VALUES (?,?)");
    for (auto* s : {&concert, &schedule, &seat, &user, &meta}) {
      if (!s->ok()) return s->status();
    }
    const TimeUs now = engine.clock();  // reads at the clock change nothing
    for (ConcertId id = 1; id <= engine.concert_count(); ++id) {
      absl::StatusOr<ConcertView> c = engine.GetConcert(id, now);
      if (!c.ok()) return c.status();
      const SaleSettings& sale = c->sale;
      if (absl::Status s = w.Insert(
              concert->get(), int64_t{c->id}, c->title, c->artist, c->venue,
              int64_t{c->created_at}, Optional(sale.opens_at, kNever),
              int64_t{sale.queue_capacity}, Optional(sale.admission_per_minute, kNoLimit),
              int64_t{sale.session_ttl_us}, int64_t{sale.hold_ttl_us},
              int64_t{sale.max_seats_per_reservation}, Optional(sale.max_seats_per_user, kNoLimit),
              int64_t{sale.release_on_payment_failure ? 1 : 0});
          !s.ok()) {
        return s;
      }
      for (const ScheduleView& sv : c->schedules) {
        if (absl::Status s = w.Insert(schedule->get(), int64_t{sv.id}, int64_t{sv.concert_id},
                                      int64_t{sv.starts_at}, int64_t{sv.seats_total});
            !s.ok()) {
          return s;
        }
        absl::StatusOr<std::vector<SeatView>> seats = engine.ListSeats(sv.id, std::nullopt, now);
        if (!seats.ok()) return seats.status();
        for (const SeatView& st : *seats) {
          if (absl::Status s = w.Insert(seat->get(), int64_t{st.id}, int64_t{st.schedule_id},
                                        st.label, st.section, int64_t{st.row},
                                        int64_t{st.number}, st.grade, int64_t{st.price},
                                        std::string(ToString(st.status)));
              !s.ok()) {
            return s;
          }
        }
      }
    }
    for (UserId id = 1; id <= engine.user_count(); ++id) {
      absl::StatusOr<Won> balance = engine.Balance(id, now);
      if (!balance.ok()) return balance.status();
      if (absl::Status s = w.Insert(user->get(), int64_t{id}, int64_t{*balance}); !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = w.Insert(meta->get(), std::string("clock_us"), int64_t{now}); !s.ok()) {
      return s;
    }
    return w.Insert(meta->get(), std::string("journal_seq"), int64_t{journal_seq});
  };
  absl::Status s = body();
  if (!s.ok()) {
    (void)w.Exec("ROLLBACK");
    return s;
  }
  return w.Exec("COMMIT");
}

}  // namespace boxoffice
