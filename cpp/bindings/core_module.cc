// boxoffice._core: the pybind11 shims over the C++ core.
//
// This file converts types and nothing else (the re2 `_re2.cc` habit): float
// seconds <-> integer microseconds, status enums <-> strings, 0/kNever <->
// None, and absl::Status -> a boxoffice.errors exception in one place
// (`ThrowStatus`, the duckdb-python habit). Arguments are converted while
// holding the GIL. Single commands and point queries (microseconds) keep the
// GIL: releasing it would make the caller queue for it again behind every
// other Python thread (a 5 ms switch interval), which costs far more than the
// call. Calls that may take long release it: batches, list queries, creating
// a concert, hashing and checking the whole state, and everything that waits
// for the journal. No engine path that holds the engine's lock needs the GIL,
// so holding the GIL while waiting for that lock cannot deadlock.
// No domain rule lives here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "boxoffice/batch.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "boxoffice/journal.h"
#include "boxoffice/store.h"

namespace py = pybind11;
using namespace boxoffice;  // NOLINT: a bindings file names every core type

namespace {

// --- errors -------------------------------------------------------------------

py::object OptionalInt(const std::optional<int64_t>& v) {
  return v.has_value() ? py::object(py::int_(*v)) : py::object(py::none());
}

// boxoffice.errors._from_status, looked up once per interpreter.
const py::object& FromStatus() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<py::object> storage;
  return storage
      .call_once_and_store_result(
          [] { return py::module_::import("boxoffice.errors").attr("_from_status"); })
      .get_stored();
}

[[noreturn]] void ThrowStatus(const absl::Status& status) {
  const ErrorInfo& info = GetErrorInfo(GetErrorCode(status));
  const ErrorDetails d = GetErrorDetails(status);
  py::object exc = FromStatus()(std::string(info.name), std::string(status.message()),
                               OptionalInt(d.position), OptionalInt(d.eta_us),
                               OptionalInt(d.seat_id), OptionalInt(d.retry_after_us));
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

template <typename T>
T Unwrap(absl::StatusOr<T>&& r) {
  if (!r.ok()) ThrowStatus(r.status());
  return *std::move(r);
}

// Runs `f` (returning StatusOr<T>) holding the GIL (a microsecond call); raises on error.
template <typename F>
auto Held(F&& f) {
  using T = typename decltype(f())::value_type;
  return Unwrap<T>(f());
}

// Runs `f` (returning StatusOr<T>) with the GIL released; raises on error.
template <typename F>
auto Released(F&& f) {
  std::optional<decltype(f())> result;
  {
    py::gil_scoped_release nogil;
    result.emplace(f());
  }
  using T = typename decltype(f())::value_type;
  return Unwrap<T>(std::move(*result));
}

// --- time ---------------------------------------------------------------------

constexpr double kSecondsMax = 1e11;

TimeUs ToMicros(double seconds, const char* what) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= kSecondsMax) {
    ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                          std::string(what) + " must be finite seconds in [0, 1e11)"));
  }
  return static_cast<TimeUs>(std::llround(seconds * 1e6));
}

DurationUs DurationToMicros(double seconds, const char* what) {
  if (!std::isfinite(seconds) || std::fabs(seconds) >= kSecondsMax) {
    ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                          std::string(what) + " must be finite seconds"));
  }
  return static_cast<DurationUs>(std::llround(seconds * 1e6));
}

int64_t OptionalLimitArg(std::optional<int64_t> value, const char* what) {
  if (!value) return kNoLimit;
  if (*value == kNoLimit) {
    ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                          std::string(what) + " must be None (no limit) or at least 1, got -1"));
  }
  return *value;
}

double Seconds(TimeUs us) { return static_cast<double>(us) / 1e6; }

py::object OptionalSeconds(TimeUs us) {
  return us == kNever ? py::object(py::none()) : py::object(py::float_(Seconds(us)));
}

py::object OptionalLimit(int64_t v) {
  return v == kNoLimit ? py::object(py::none()) : py::object(py::int_(v));
}

py::object OptionalId(int64_t id) {
  return id == 0 ? py::object(py::none()) : py::object(py::int_(id));
}

std::optional<SeatStatus> ParseSeatStatus(const std::optional<std::string>& s) {
  if (!s.has_value()) return std::nullopt;
  for (auto st : {SeatStatus::kAvailable, SeatStatus::kHeld, SeatStatus::kSold}) {
    if (*s == ToString(st)) return st;
  }
  ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                        "status must be AVAILABLE, HELD or SOLD, got '" + *s + "'"));
}

// --- view bindings -------------------------------------------------------------

#define RO(cls, field) def_property_readonly(#field, [](const cls& v) { return v.field; })
#define RO_SECONDS(cls, field) \
  def_property_readonly(#field, [](const cls& v) { return Seconds(v.field); })
#define RO_NAME(cls, field) \
  def_property_readonly(#field, [](const cls& v) { return std::string(ToString(v.field)); })

template <typename T>
std::string Repr(const char* name, const T& id) {
  return std::string("<boxoffice.") + name + " id=" + std::to_string(id) + ">";
}

void BindSettings(py::module_& m) {
  py::class_<Limits>(m, "Limits", "Named limits of the engine (see cpp/include/boxoffice/limits.h).")
      .def(py::init([](const py::kwargs& kwargs) {
        Limits l;
        py::object self = py::cast(l);
        for (auto [key, value] : kwargs) {
          const std::string name = py::str(key);
          if (!py::hasattr(self, name.c_str())) {
            ThrowStatus(MakeError(ErrorCode::kInvalidArgument, "unknown limit '" + name + "'"));
          }
          self.attr(name.c_str()) = value;
        }
        return self.cast<Limits>();
      }))
      .def_readwrite("users_max", &Limits::users_max)
      .def_readwrite("concerts_max", &Limits::concerts_max)
      .def_readwrite("schedules_per_concert_max", &Limits::schedules_per_concert_max)
      .def_readwrite("sections_per_schedule_max", &Limits::sections_per_schedule_max)
      .def_readwrite("seats_per_schedule_max", &Limits::seats_per_schedule_max)
      .def_readwrite("rows_per_section_max", &Limits::rows_per_section_max)
      .def_readwrite("seats_per_row_max", &Limits::seats_per_row_max)
      .def_readwrite("seats_per_reservation_max", &Limits::seats_per_reservation_max)
      .def_readwrite("queue_length_max", &Limits::queue_length_max)
      .def_readwrite("queue_capacity_max", &Limits::queue_capacity_max)
      .def_readwrite("price_max", &Limits::price_max)
      .def_readwrite("charge_amount_max", &Limits::charge_amount_max)
      .def_readwrite("balance_max", &Limits::balance_max)
      .def_readwrite("text_length_max", &Limits::text_length_max)
      .def_readwrite("idempotency_key_length_max", &Limits::idempotency_key_length_max)
      .def_property(
          "idempotency_ttl_s", [](const Limits& l) { return Seconds(l.idempotency_ttl_us); },
          [](Limits& l, double s) { l.idempotency_ttl_us = DurationToMicros(s, "idempotency_ttl_s"); })
      .def_readwrite("event_retention_max", &Limits::event_retention_max)
      .def_readwrite("list_limit_max", &Limits::list_limit_max);

  py::class_<SaleSettings>(m, "SaleSettings",
                           "Sale settings of a concert; durations in seconds, None = not set.")
      .def(py::init([](std::optional<double> opens_at, int64_t queue_capacity,
                       std::optional<int64_t> admission_per_minute, double session_ttl_s,
                       double hold_ttl_s, int64_t max_seats_per_reservation,
                       std::optional<int64_t> max_seats_per_user, bool release_on_payment_failure,
                       double abandon_timeout_s, double poll_interval_s) {
             SaleSettings s;
             s.opens_at = opens_at ? ToMicros(*opens_at, "opens_at") : kNever;
             s.queue_capacity = queue_capacity;
             // None is the C++ sentinel kNoLimit; the sentinel itself given as a number
             // must not silently mean "no limit", so it is refused like any value below 1.
             s.admission_per_minute = OptionalLimitArg(admission_per_minute, "admission_per_minute");
             s.session_ttl_us = DurationToMicros(session_ttl_s, "session_ttl_s");
             s.hold_ttl_us = DurationToMicros(hold_ttl_s, "hold_ttl_s");
             s.max_seats_per_reservation = max_seats_per_reservation;
             s.max_seats_per_user = OptionalLimitArg(max_seats_per_user, "max_seats_per_user");
             s.release_on_payment_failure = release_on_payment_failure;
             s.abandon_timeout_us = DurationToMicros(abandon_timeout_s, "abandon_timeout_s");
             s.poll_interval_us = DurationToMicros(poll_interval_s, "poll_interval_s");
             return s;
           }),
           py::kw_only(), py::arg("opens_at") = py::none(), py::arg("queue_capacity") = 200,
           py::arg("admission_per_minute") = py::none(), py::arg("session_ttl_s") = 600.0,
           py::arg("hold_ttl_s") = 300.0, py::arg("max_seats_per_reservation") = 4,
           py::arg("max_seats_per_user") = py::none(),
           py::arg("release_on_payment_failure") = false, py::arg("abandon_timeout_s") = 60.0,
           py::arg("poll_interval_s") = 5.0)
      .def_property_readonly("opens_at",
                             [](const SaleSettings& s) { return OptionalSeconds(s.opens_at); })
      .def_readonly("queue_capacity", &SaleSettings::queue_capacity)
      .def_property_readonly("admission_per_minute",
                             [](const SaleSettings& s) { return OptionalLimit(s.admission_per_minute); })
      .def_property_readonly("session_ttl_s",
                             [](const SaleSettings& s) { return Seconds(s.session_ttl_us); })
      .def_property_readonly("hold_ttl_s", [](const SaleSettings& s) { return Seconds(s.hold_ttl_us); })
      .def_readonly("max_seats_per_reservation", &SaleSettings::max_seats_per_reservation)
      .def_property_readonly("max_seats_per_user",
                             [](const SaleSettings& s) { return OptionalLimit(s.max_seats_per_user); })
      .def_readonly("release_on_payment_failure", &SaleSettings::release_on_payment_failure)
      .def_property_readonly("abandon_timeout_s",
                             [](const SaleSettings& s) { return Seconds(s.abandon_timeout_us); })
      .def_property_readonly("poll_interval_s",
                             [](const SaleSettings& s) { return Seconds(s.poll_interval_us); });

  py::class_<SectionSpec>(m, "SectionSpec",
                          "A block of a seat map: rows x seats_per_row seats of one grade and price (won).")
      .def(py::init([](std::string name, int64_t rows, int64_t seats_per_row, std::string grade,
                       Won price) {
             return SectionSpec{std::move(name), rows, seats_per_row, std::move(grade), price};
           }),
           py::arg("name"), py::arg("rows"), py::arg("seats_per_row"), py::arg("grade"),
           py::arg("price"))
      .def_readwrite("name", &SectionSpec::name)
      .def_readwrite("rows", &SectionSpec::rows)
      .def_readwrite("seats_per_row", &SectionSpec::seats_per_row)
      .def_readwrite("grade", &SectionSpec::grade)
      .def_readwrite("price", &SectionSpec::price);

  py::class_<ScheduleSpec>(m, "ScheduleSpec", "One performance: its start (seconds) and seat map.")
      .def(py::init([](double starts_at, std::vector<SectionSpec> sections) {
             return ScheduleSpec{ToMicros(starts_at, "starts_at"), std::move(sections)};
           }),
           py::arg("starts_at"), py::arg("sections"))
      .def_property(
          "starts_at", [](const ScheduleSpec& s) { return Seconds(s.starts_at); },
          [](ScheduleSpec& s, double v) { s.starts_at = ToMicros(v, "starts_at"); })
      .def_readwrite("sections", &ScheduleSpec::sections);
}

void BindViews(py::module_& m) {
  py::class_<ScheduleView>(m, "Schedule", "A schedule with its seat counts.")
      .RO(ScheduleView, id)
      .RO(ScheduleView, concert_id)
      .RO_SECONDS(ScheduleView, starts_at)
      .RO(ScheduleView, seats_total)
      .RO(ScheduleView, seats_available)
      .RO(ScheduleView, seats_held)
      .RO(ScheduleView, seats_sold)
      .def("__repr__", [](const ScheduleView& v) { return Repr("Schedule", v.id); });

  py::class_<ConcertView>(m, "Concert", "A concert: catalog data, sale settings, schedules.")
      .RO(ConcertView, id)
      .RO(ConcertView, title)
      .RO(ConcertView, artist)
      .RO(ConcertView, venue)
      .RO(ConcertView, sale)
      .RO(ConcertView, grades)
      .RO(ConcertView, schedules)
      .RO_SECONDS(ConcertView, created_at)
      .def("__repr__", [](const ConcertView& v) { return Repr("Concert", v.id); });

  py::class_<SeatView>(m, "Seat", "One seat: label 'section-row-number', grade, price (won), status.")
      .RO(SeatView, id)
      .RO(SeatView, schedule_id)
      .RO(SeatView, label)
      .RO(SeatView, section)
      .RO(SeatView, row)
      .RO(SeatView, number)
      .RO(SeatView, grade)
      .RO(SeatView, price)
      .RO_NAME(SeatView, status)
      .def("__repr__", [](const SeatView& v) { return Repr("Seat", v.id); });

  py::class_<TokenView>(m, "QueueToken",
                        "A queue token: state, exact position, ETA (s), poll interval (s).")
      .RO(TokenView, id)
      .RO(TokenView, user_id)
      .RO(TokenView, concert_id)
      .RO_NAME(TokenView, state)
      .def_property_readonly("ended_reason",
                             [](const TokenView& v) -> py::object {
                               if (v.end == TokenEnd::kNone) return py::none();
                               return py::str(std::string(ToString(v.end)));
                             })
      .def_property_readonly("position",
                             [](const TokenView& v) -> py::object {
                               if (v.position < 0) return py::none();
                               return py::int_(v.position);
                             })
      .def_property_readonly("eta_s",
                             [](const TokenView& v) -> py::object {
                               if (v.state != TokenState::kWaiting) return py::none();
                               return py::float_(Seconds(v.eta_us));
                             })
      .def_property_readonly("poll_after_s",
                             [](const TokenView& v) { return Seconds(v.poll_after_us); })
      .RO_SECONDS(TokenView, joined_at)
      .def_property_readonly("activated_at",
                             [](const TokenView& v) { return OptionalSeconds(v.activated_at); })
      .def_property_readonly("expires_at",
                             [](const TokenView& v) { return OptionalSeconds(v.expires_at); })
      .def_property_readonly("ended_at",
                             [](const TokenView& v) { return OptionalSeconds(v.ended_at); })
      .def("__repr__", [](const TokenView& v) {
        return Repr("QueueToken", v.id) + " " + std::string(ToString(v.state));
      });

  py::class_<Reservation>(m, "Reservation",
                          "Seats held by one user: PENDING until expires_at (s), then ended.")
      .RO(Reservation, id)
      .RO(Reservation, user_id)
      .RO(Reservation, concert_id)
      .RO(Reservation, schedule_id)
      .RO(Reservation, token_id)
      .RO_NAME(Reservation, status)
      .def_property_readonly("seat_ids",
                             [](const Reservation& r) {
                               return std::vector<SeatId>(r.seat_ids.begin(), r.seat_ids.end());
                             })
      .RO(Reservation, amount)
      .RO_SECONDS(Reservation, created_at)
      .RO_SECONDS(Reservation, expires_at)
      .def_property_readonly("ended_at",
                             [](const Reservation& r) { return OptionalSeconds(r.ended_at); })
      .def_property_readonly("payment_id",
                             [](const Reservation& r) { return OptionalId(r.payment_id); })
      .def("__repr__", [](const Reservation& r) {
        return Repr("Reservation", r.id) + " " + std::string(ToString(r.status));
      });

  py::class_<Payment>(m, "Payment", "A payment of a reservation (won).")
      .RO(Payment, id)
      .RO(Payment, reservation_id)
      .RO(Payment, user_id)
      .RO(Payment, amount)
      .RO_NAME(Payment, status)
      .RO_SECONDS(Payment, paid_at)
      .RO(Payment, balance_after)
      .def("__repr__", [](const Payment& p) { return Repr("Payment", p.id); });

  py::class_<ChargeResult>(m, "Charge", "A charge of a wallet: amount and balance after (won).")
      .RO(ChargeResult, entry_id)
      .RO(ChargeResult, user_id)
      .RO(ChargeResult, amount)
      .RO(ChargeResult, balance)
      .RO_SECONDS(ChargeResult, at);

  py::class_<HistoryEntry>(m, "HistoryEntry",
                           "A wallet history entry: CHARGE, PAYMENT or REFUND with balance_after.")
      .RO(HistoryEntry, id)
      .RO(HistoryEntry, user_id)
      .RO_NAME(HistoryEntry, kind)
      .RO(HistoryEntry, amount)
      .RO(HistoryEntry, balance_after)
      .RO_SECONDS(HistoryEntry, at)
      .def_property_readonly("reservation_id",
                             [](const HistoryEntry& e) { return OptionalId(e.reservation_id); });

  py::class_<ConcertStats>(m, "ConcertStats", "Operator view of a concert.")
      .RO(ConcertStats, concert_id)
      .RO(ConcertStats, queue_waiting)
      .RO(ConcertStats, queue_active)
      .RO(ConcertStats, queue_joined_total)
      .RO(ConcertStats, queue_admitted_total)
      .RO(ConcertStats, queue_abandoned_total)
      .RO(ConcertStats, seats_total)
      .RO(ConcertStats, seats_available)
      .RO(ConcertStats, seats_held)
      .RO(ConcertStats, seats_sold)
      .RO(ConcertStats, reservations_pending)
      .RO(ConcertStats, reservations_confirmed)
      .RO(ConcertStats, reservations_expired)
      .RO(ConcertStats, reservations_canceled)
      .RO(ConcertStats, reservations_refunded)
      .RO(ConcertStats, payments)
      .RO(ConcertStats, revenue);

  py::class_<Event>(m, "Event", "A domain event with its sequence number.")
      .RO(Event, seq)
      .RO_NAME(Event, type)
      .RO_SECONDS(Event, at)
      .RO(Event, user_id)
      .RO(Event, concert_id)
      .RO(Event, token_id)
      .RO(Event, reservation_id)
      .RO(Event, amount)
      .RO(Event, value)
      .def("__repr__", [](const Event& e) {
        return "<boxoffice.Event seq=" + std::to_string(e.seq) + " " +
               std::string(ToString(e.type)) + ">";
      });
}

// --- engine -------------------------------------------------------------------

// The Store behind a durable engine; STORE_CLOSED when it has none (any more).
Store* StoreOf(Engine& e) {
  auto* store = dynamic_cast<Store*>(e.sink());
  if (store == nullptr) {
    ThrowStatus(MakeError(ErrorCode::kStoreClosed, "this engine has no open store"));
  }
  return store;
}

// --- journal records ------------------------------------------------------------

constexpr const char* kCommandTypeNames[] = {
    "ADVANCE", "CREATE_USER", "CREATE_CONCERT", "JOIN",   "STATUS", "LEAVE",  "GATE",
    "HOLD",    "RELEASE_SEAT", "CANCEL",        "CHARGE", "PAY",    "REFUND", "BATCH"};
static_assert(std::size(kCommandTypeNames) == static_cast<size_t>(CommandType::kCount));

constexpr const char* kBatchOpNames[] = {"ADVANCE", "CREATE_USER", "JOIN",   "STATUS",
                                         "LEAVE",   "HOLD",        "HOLD_BEST", "RELEASE_SEAT",
                                         "CANCEL",  "CHARGE",      "PAY",    "REFUND"};
static_assert(std::size(kBatchOpNames) == static_cast<size_t>(BatchOp::kCount));

// A malformed record is the store's DATA_LOSS.
Command Decode(const py::bytes& record) {
  const std::string_view view(record);
  absl::StatusOr<Command> c = DecodeCommand(absl::string_view(view.data(), view.size()));
  if (!c.ok()) ThrowStatus(MakeError(ErrorCode::kDataLoss, std::string(c.status().message())));
  return *std::move(c);
}

// Text recorded from clients (idempotency keys, grade names) as str, never failing.
py::str Text(const std::string& s) {
  return py::reinterpret_steal<py::str>(
      PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

py::dict CommandDict(const Command& c) {
  py::dict d;
  d["type"] = kCommandTypeNames[static_cast<size_t>(c.type)];
  if (c.type == CommandType::kBatchCommand) {
    const BatchCommand& b = c.batch;
    d["op"] = b.op < std::size(kBatchOpNames) ? py::object(py::str(kBatchOpNames[b.op]))
                                                : py::object(py::int_(b.op));
    d["now"] = Seconds(b.now_us);
    d["user"] = b.user;
    d["token"] = b.token;
    d["target"] = b.target;
    d["arg"] = b.arg;
    d["quantity"] = static_cast<int64_t>(b.quantity);
    d["grade"] = "";
    d["grade_index"] = static_cast<int64_t>(b.grade);
    d["key"] = "";
    d["seats"] = std::vector<SeatId>();
    return d;
  }
  d["op"] = py::none();
  d["now"] = Seconds(c.now);
  d["user"] = c.user;
  d["token"] = c.token;
  d["target"] = c.target;
  d["arg"] = c.arg;
  d["quantity"] = c.quantity;
  d["grade"] = Text(c.grade);
  d["grade_index"] = 0;
  d["key"] = Text(c.key);
  d["seats"] = c.seats;
  return d;
}

void BindEngine(py::module_& m) {
  py::class_<Engine, std::shared_ptr<Engine>>(m, "Engine")
      .def(py::init([](std::optional<std::string> path, const std::string& durability,
                       int64_t snapshot_every_records, uint64_t seed,
                       std::optional<Limits> limits) -> std::shared_ptr<Engine> {
             EngineConfig config;
             config.seed = seed;
             if (limits) config.limits = *limits;
             if (absl::Status s = ValidateLimits(config.limits); !s.ok()) ThrowStatus(s);
             if (!path) return std::make_shared<Engine>(config);
             StoreOptions options;
             options.path = *path;
             options.config = config;
             options.snapshot_every_records = snapshot_every_records;
             absl::StatusOr<Durability> d = ParseDurability(durability);
             if (!d.ok()) {
               ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                                     "durability must be 'full', 'normal' or 'off'"));
             }
             options.durability = *d;
             absl::StatusOr<std::unique_ptr<Store>> store;
             {
               py::gil_scoped_release nogil;
               store = Store::Open(options);
             }
             if (!store.ok()) ThrowStatus(store.status());
             return Store::ShareEngine(std::shared_ptr<Store>(*std::move(store)));
           }),
           py::arg("path") = py::none(), py::kw_only(), py::arg("durability") = "full",
           py::arg("snapshot_every_records") = 1'000'000, py::arg("seed") = 0,
           py::arg("limits") = py::none())
      .def_property_readonly("last_seq", &Engine::LastRecordedSeq)
      .def("_wait_durable",
           [](Engine& e, Seq seq) {
             Store* store = StoreOf(e);
             absl::Status s;
             {
               py::gil_scoped_release nogil;
               s = store->WaitDurable(seq);
             }
             if (!s.ok()) ThrowStatus(s);
           })
      .def("_snapshot",
           [](Engine& e) {
             Store* store = StoreOf(e);
             absl::Status s;
             {
               py::gil_scoped_release nogil;
               s = store->Snapshot();
             }
             if (!s.ok()) ThrowStatus(s);
           })
      .def("_close",
           [](Engine& e) {
             Store* store = StoreOf(e);
             absl::Status s;
             {
               py::gil_scoped_release nogil;
               s = store->Close();
             }
             if (!s.ok()) ThrowStatus(s);
           })
      .def("_store_status",
           [](Engine& e) {
             absl::Status s = StoreOf(e)->Accepting();
             if (!s.ok()) ThrowStatus(s);
           })
      .def("_recovery", [](Engine& e) {
        const RecoveryStats& r = StoreOf(e)->recovery();
        py::dict d;
        d["created"] = r.created;
        d["snapshot_seq"] = r.snapshot_seq;
        d["replayed"] = r.replayed;
        d["torn_groups_skipped"] = r.torn_groups_skipped;
        d["last_seq"] = r.last_seq;
        return d;
      })
      .def_property_readonly("limits", [](const Engine& e) { return Limits(e.limits()); })
      .def_property_readonly("seed", &Engine::seed)
      .def_property_readonly("clock",
                             [](Engine& e) {
                               return Seconds(e.clock());
                             })
      .def_property_readonly("user_count",
                             [](Engine& e) {
                               return e.user_count();
                             })
      .def_property_readonly("concert_count",
                             [](Engine& e) {
                               return e.concert_count();
                             })
      .def_property_readonly("last_event_seq",
                             [](Engine& e) {
                               return e.last_event_seq();
                             })
      .def(
          "create_user",
          [](Engine& e, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.CreateUser(t); });
          },
          py::kw_only(), py::arg("now"))
      .def(
          "create_concert",
          [](Engine& e, std::string title, std::string artist, std::string venue,
             std::vector<ScheduleSpec> schedules, std::optional<SaleSettings> sale, double now) {
            ConcertSpec spec;
            spec.title = std::move(title);
            spec.artist = std::move(artist);
            spec.venue = std::move(venue);
            spec.schedules = std::move(schedules);
            if (sale) spec.sale = *sale;
            const TimeUs t = ToMicros(now, "now");
            return Released([&] { return e.CreateConcert(spec, t); });
          },
          py::kw_only(), py::arg("title"), py::arg("artist") = "", py::arg("venue") = "",
          py::arg("schedules"), py::arg("sale") = py::none(), py::arg("now"))
      .def(
          "join_queue",
          [](Engine& e, UserId user, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.JoinQueue(user, concert, t); });
          },
          py::arg("user_id"), py::arg("concert_id"), py::kw_only(), py::arg("now"))
      .def(
          "queue_status",
          [](Engine& e, UserId user, TokenId token, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.QueueStatus(user, token, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::kw_only(), py::arg("now"))
      .def(
          "leave_queue",
          [](Engine& e, UserId user, TokenId token, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.LeaveQueue(user, token, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::kw_only(), py::arg("now"))
      .def(
          "check_gate",
          [](Engine& e, UserId user, TokenId token, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.CheckGate(user, token, concert, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::arg("concert_id"), py::kw_only(),
          py::arg("now"))
      .def(
          "hold",
          [](Engine& e, UserId user, TokenId token, ScheduleId schedule,
             std::optional<std::vector<SeatId>> seat_ids, int64_t quantity, std::string grade,
             std::string idempotency_key, double now) {
            HoldRequest r;
            r.user_id = user;
            r.token_id = token;
            r.schedule_id = schedule;
            if (seat_ids) r.seat_ids = std::move(*seat_ids);
            r.quantity = quantity;
            r.grade = std::move(grade);
            r.idempotency_key = std::move(idempotency_key);
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Hold(r, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::arg("schedule_id"),
          py::arg("seat_ids") = py::none(), py::kw_only(), py::arg("quantity") = 0,
          py::arg("grade") = "", py::arg("idempotency_key") = "", py::arg("now"))
      .def(
          "release_seat",
          [](Engine& e, UserId user, ReservationId reservation, SeatId seat, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.ReleaseSeat(user, reservation, seat, t); });
          },
          py::arg("user_id"), py::arg("reservation_id"), py::arg("seat_id"), py::kw_only(),
          py::arg("now"))
      .def(
          "cancel",
          [](Engine& e, UserId user, ReservationId reservation, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Cancel(user, reservation, t); });
          },
          py::arg("user_id"), py::arg("reservation_id"), py::kw_only(), py::arg("now"))
      .def(
          "charge",
          [](Engine& e, UserId user, Won amount, std::string idempotency_key, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Charge(user, amount, idempotency_key, t); });
          },
          py::arg("user_id"), py::arg("amount"), py::kw_only(), py::arg("idempotency_key") = "",
          py::arg("now"))
      .def(
          "pay",
          [](Engine& e, UserId user, TokenId token, ReservationId reservation,
             std::string idempotency_key, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Pay(user, token, reservation, idempotency_key, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::arg("reservation_id"), py::kw_only(),
          py::arg("idempotency_key") = "", py::arg("now"))
      .def(
          "refund",
          [](Engine& e, UserId user, ReservationId reservation, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Refund(user, reservation, t); });
          },
          py::arg("user_id"), py::arg("reservation_id"), py::kw_only(), py::arg("now"))
      .def(
          "advance",
          [](Engine& e, double now) {
            const TimeUs t = ToMicros(now, "now");
            py::gil_scoped_release nogil;
            e.Advance(t);
          },
          py::kw_only(), py::arg("now"))
      .def(
          "concert",
          [](Engine& e, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.GetConcert(concert, t); });
          },
          py::arg("concert_id"), py::kw_only(), py::arg("now"))
      .def(
          "concerts",
          [](Engine& e, std::string query, std::optional<double> starts_from,
             std::optional<double> starts_to, double now) {
            std::optional<TimeUs> from, to;
            if (starts_from) from = ToMicros(*starts_from, "starts_from");
            if (starts_to) to = ToMicros(*starts_to, "starts_to");
            const TimeUs t = ToMicros(now, "now");
            py::gil_scoped_release nogil;
            return e.ListConcerts(query, from, to, t);
          },
          py::arg("query") = "", py::kw_only(), py::arg("starts_from") = py::none(),
          py::arg("starts_to") = py::none(), py::arg("now"))
      .def(
          "live_token",
          [](Engine& e, UserId user, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.LiveToken(user, concert, t); });
          },
          py::arg("user_id"), py::arg("concert_id"), py::kw_only(), py::arg("now"))
      .def(
          "schedules",
          [](Engine& e, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Released([&] { return e.ListSchedules(concert, t); });
          },
          py::arg("concert_id"), py::kw_only(), py::arg("now"))
      .def(
          "seats",
          [](Engine& e, ScheduleId schedule, std::optional<std::string> status, SeatId after,
             std::optional<int64_t> limit, double now) {
            const std::optional<SeatStatus> st = ParseSeatStatus(status);
            const TimeUs t = ToMicros(now, "now");
            if (limit && *limit < 0) {
              ThrowStatus(MakeError(ErrorCode::kInvalidArgument, "limit must be >= 0"));
            }
            const int64_t n = limit.value_or(std::numeric_limits<int64_t>::max());
            return Released([&] { return e.ListSeats(schedule, st, after, n, t); });
          },
          py::arg("schedule_id"), py::arg("status") = py::none(), py::kw_only(),
          py::arg("after") = 0, py::arg("limit") = py::none(), py::arg("now"))
      .def(
          "reservation",
          [](Engine& e, UserId user, ReservationId reservation, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.GetReservation(user, reservation, t); });
          },
          py::arg("user_id"), py::arg("reservation_id"), py::kw_only(), py::arg("now"))
      .def(
          "reservations",
          [](Engine& e, UserId user, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Released([&] { return e.ListReservations(user, t); });
          },
          py::arg("user_id"), py::kw_only(), py::arg("now"))
      .def(
          "balance",
          [](Engine& e, UserId user, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Balance(user, t); });
          },
          py::arg("user_id"), py::kw_only(), py::arg("now"))
      .def(
          "history",
          [](Engine& e, UserId user, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Released([&] { return e.History(user, t); });
          },
          py::arg("user_id"), py::kw_only(), py::arg("now"))
      .def(
          "stats",
          [](Engine& e, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return Held([&] { return e.Stats(concert, t); });
          },
          py::arg("concert_id"), py::kw_only(), py::arg("now"))
      .def(
          "events",
          [](Engine& e, Seq after, int64_t limit) {
            py::gil_scoped_release nogil;
            return e.EventsAfter(after, limit);
          },
          py::arg("after") = 0, py::arg("limit") = 1000)
      .def("state_hash",
           [](Engine& e) {
             py::gil_scoped_release nogil;
             return e.StateHash();
           })
      .def("check_invariants",
           [](Engine& e) {
             absl::Status s;
             {
               py::gil_scoped_release nogil;
               s = e.CheckInvariants();
             }
             if (!s.ok()) ThrowStatus(s);
           })
      .def(
          "_replay_record",
          [](Engine& e, const py::bytes& record) {
            const Command c = Decode(record);
            py::gil_scoped_release nogil;
            (void)e.Replay(c);  // a command that failed when recorded fails again
          },
          py::arg("record"))
      .def(
          "_apply_batch",
          [](Engine& e, const py::buffer& commands, const py::buffer& results) {
            py::buffer_info in = commands.request();
            py::buffer_info out = results.request(/*writable=*/true);
            const auto in_bytes = static_cast<size_t>(in.size * in.itemsize);
            const auto out_bytes = static_cast<size_t>(out.size * out.itemsize);
            if (in_bytes % sizeof(BatchCommand) != 0 ||
                out_bytes != in_bytes / sizeof(BatchCommand) * sizeof(BatchResult)) {
              ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                                    "buffers do not hold whole commands and results"));
            }
            const size_t n = in_bytes / sizeof(BatchCommand);
            std::span<const BatchCommand> cmds(static_cast<const BatchCommand*>(in.ptr), n);
            std::span<BatchResult> res(static_cast<BatchResult*>(out.ptr), n);
            py::gil_scoped_release nogil;
            e.ApplyBatch(cmds, res);
          },
          py::arg("commands"), py::arg("results"));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "boxoffice core engine (C++); use the `boxoffice` package instead.";
  py::dict codes;
  for (int i = 0; i < kErrorCodeCount; ++i) {
    const ErrorInfo& info = GetErrorInfo(static_cast<ErrorCode>(i));
    codes[py::str(std::string(info.name))] = py::make_tuple(
        std::string(absl::StatusCodeToString(info.status_code)), info.http_status, i);
  }
  m.attr("ERROR_CODES") = codes;
  py::dict ops;
  for (size_t i = 0; i < std::size(kBatchOpNames); ++i) ops[kBatchOpNames[i]] = i;
  m.attr("BATCH_OPS") = ops;
  m.def(
      "journal_records",
      [](const std::string& path) {
        absl::StatusOr<JournalRecords> r;
        {
          py::gil_scoped_release nogil;
          r = ReadJournalRecords(path);
        }
        if (!r.ok()) ThrowStatus(r.status());
        py::list records;
        for (const std::string& rec : r->records) records.append(py::bytes(rec));
        return py::make_tuple(r->first_seq, records);
      },
      py::arg("path"));
  m.def("decode_record", [](const py::bytes& record) { return CommandDict(Decode(record)); },
        py::arg("record"));
  BindSettings(m);
  BindViews(m);
  BindEngine(m);
}
