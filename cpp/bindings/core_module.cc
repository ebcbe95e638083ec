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

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <limits>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "boxoffice/batch.h"
#include "boxoffice/command.h"
#include "boxoffice/engine.h"
#include "boxoffice/errors.h"
#include "boxoffice/journal.h"
#include "boxoffice/queue_digest.h"
#include "boxoffice/snapshot.h"
#include "boxoffice/store.h"
#include "stub_docs.h"  // generated from python/boxoffice/_core.pyi (cpp/bindings/stub_docs.py)

namespace py = pybind11;
using namespace boxoffice;  // NOLINT: a bindings file names every core type

namespace {

// --- errors -------------------------------------------------------------------

// boxoffice.errors.error_class(code) for every code, looked up once per interpreter.
const std::vector<py::object>& ErrorClasses() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<std::vector<py::object>> storage;
  return storage
      .call_once_and_store_result([] {
        py::object error_class = py::module_::import("boxoffice.errors").attr("error_class");
        std::vector<py::object> classes;
        for (int i = 0; i < kErrorCodeCount; ++i) {
          classes.push_back(error_class(std::string(GetErrorInfo(static_cast<ErrorCode>(i)).name)));
        }
        return classes;
      })
      .get_stored();
}

// What building an exception needs from boxoffice.errors, looked up once per interpreter:
// BoxOfficeError.__init__, and the slot descriptors of the attributes it sets, in the
// order of `values` in RefusalException.
struct ErrorSlots {
  py::object base_init;
  std::array<py::object, 5> slots;  // message, position, eta_s, seat_id, retry_after_s
};

const ErrorSlots& GetErrorSlots() {
  PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<ErrorSlots> storage;
  return storage
      .call_once_and_store_result([] {
        py::object base = py::module_::import("boxoffice.errors").attr("BoxOfficeError");
        py::dict attrs = base.attr("__dict__");
        ErrorSlots e;
        e.base_init = base.attr("__init__");
        const char* names[] = {"message", "position", "eta_s", "seat_id", "retry_after_s"};
        for (size_t i = 0; i < std::size(names); ++i) {
          e.slots[i] = attrs[names[i]];
          if (Py_TYPE(e.slots[i].ptr())->tp_descr_set == nullptr) {
            throw std::logic_error(std::string("BoxOfficeError.") + names[i] + " is not a slot");
          }
        }
        return e;
      })
      .get_stored();
}

// The boxoffice.errors exception (not raised) for a refusal, built as
// BoxOfficeError.__init__ would build it: BaseException.__new__ with the message as its
// one argument, then the five slots __init__ sets (message, position, eta_s, seat_id,
// retry_after_s; None when the refusal has no such detail), through their descriptors.
// No Python frame runs and no instance dict is made: a refusal is a normal answer on the
// hot path. A class with an __init__ of its own is called instead.
py::object RefusalException(ErrorCode code, absl::string_view text, const ErrorDetails& d) {
  const ErrorSlots& e = GetErrorSlots();
  py::object message = py::reinterpret_steal<py::object>(
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
  if (!message) throw py::error_already_set();
  auto optional_int = [](const std::optional<int64_t>& v) -> py::object {
    return v ? py::object(py::int_(*v)) : py::object(py::none());
  };
  auto optional_seconds = [](const std::optional<int64_t>& v) -> py::object {
    return v ? py::object(py::float_(static_cast<double>(*v) / 1e6)) : py::object(py::none());
  };
  auto i = static_cast<size_t>(code);
  if (i >= static_cast<size_t>(kErrorCodeCount)) i = static_cast<size_t>(ErrorCode::kInternal);
  const py::object& cls = ErrorClasses()[i];
  // Whether each class keeps BoxOfficeError.__init__, looked up once per class.
  static std::array<int8_t, kErrorCodeCount> plain{};  // 0 unknown, 1 yes, -1 no
  if (plain[i] == 0) plain[i] = py::object(cls.attr("__init__")).is(e.base_init) ? 1 : -1;
  if (plain[i] < 0) {
    return cls(message, py::arg("position") = optional_int(d.position),
               py::arg("eta_s") = optional_seconds(d.eta_us),
               py::arg("seat_id") = optional_int(d.seat_id),
               py::arg("retry_after_s") = optional_seconds(d.retry_after_us));
  }
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  py::object args = py::reinterpret_steal<py::object>(PyTuple_Pack(1, message.ptr()));
  if (!args) throw py::error_already_set();
  py::object exc = py::reinterpret_steal<py::object>(type->tp_new(type, args.ptr(), nullptr));
  if (!exc) throw py::error_already_set();
  const py::object values[] = {message, optional_int(d.position), optional_seconds(d.eta_us),
                               optional_int(d.seat_id), optional_seconds(d.retry_after_us)};
  for (size_t k = 0; k < std::size(values); ++k) {
    PyObject* slot = e.slots[k].ptr();
    if (Py_TYPE(slot)->tp_descr_set(slot, exc.ptr(), values[k].ptr()) != 0) {
      throw py::error_already_set();
    }
  }
  return exc;
}

py::object StatusException(const absl::Status& status) {
  return RefusalException(GetErrorCode(status), status.message(), GetErrorDetails(status));
}

// Sets `exc` as the current Python error; returns nullptr.
PyObject* SetError(const py::object& exc) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  return nullptr;
}

// Sets the exception for `status` as the current Python error; returns nullptr.
PyObject* SetStatusError(const absl::Status& status) { return SetError(StatusException(status)); }

[[noreturn]] void ThrowStatus(const absl::Status& status) {
  SetStatusError(status);
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

// A page size for the seat listings: None = all; below 0 is INVALID_ARGUMENT.
int64_t PageLimit(const std::optional<int64_t>& limit) {
  if (limit && *limit < 0) {
    ThrowStatus(MakeError(ErrorCode::kInvalidArgument, "limit must be >= 0"));
  }
  return limit.value_or(std::numeric_limits<int64_t>::max());
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
                        "A queue token: status, exact position, ETA (s), poll interval (s).")
      .RO(TokenView, id)
      .RO(TokenView, user_id)
      .RO(TokenView, concert_id)
      .RO_NAME(TokenView, status)
      .def_property_readonly("join_seq",
                             [](const TokenView& v) -> py::object {
                               if (v.join_seq < 0) return py::none();
                               return py::int_(v.join_seq);
                             })
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
                               if (v.status != TokenStatus::kWaiting) return py::none();
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
      .def_readonly("created", &TokenView::created,
                    "join_queue only: True when this call made the token, False when it "
                    "returned the user's live one.")
      .def("__repr__", [](const TokenView& v) {
        return Repr("QueueToken", v.id) + " " + std::string(ToString(v.status));
      });

  py::class_<QueueDigest>(m, "QueueDigest",
                          "One concert's waiting room as of one moment: answers WAITING polls.")
      .def(py::init([](const py::bytes& data) {
             const std::string_view view(data);
             return Unwrap(QueueDigest::Decode(absl::string_view(view.data(), view.size())));
           }),
           py::arg("data"))
      .def_property_readonly("concert_id", &QueueDigest::concert_id)
      .def_property_readonly("as_of", [](const QueueDigest& d) { return Seconds(d.as_of()); })
      .def_property_readonly("open", &QueueDigest::open)
      .def_property_readonly("abandon_timeout_s",
                             [](const QueueDigest& d) { return Seconds(d.abandon_timeout_us()); })
      .def_property_readonly("waiting", &QueueDigest::waiting)
      .def_property_readonly("active", &QueueDigest::active)
      .def_property_readonly("joined", &QueueDigest::joined)
      .def_property_readonly("encoded_bytes", &QueueDigest::encoded_bytes)
      .def(
          "position",
          [](const QueueDigest& d, int64_t join_seq) -> py::object {
            const int64_t p = d.Position(join_seq);
            if (p < 0) return py::none();
            return py::int_(p);
          },
          py::arg("join_seq"))
      .def(
          "waiting_token",
          [](const QueueDigest& d, TokenId id, UserId user, int64_t join_seq,
             double joined_at) -> std::optional<TokenView> {
            const int64_t p = d.Position(join_seq);
            if (p < 0) return std::nullopt;
            TokenView v;
            v.id = id;
            v.user_id = user;
            v.concert_id = d.concert_id();
            v.status = TokenStatus::kWaiting;
            v.position = p;
            v.join_seq = join_seq;
            v.eta_us = d.Eta(p);
            v.poll_after_us = d.poll_interval_us();
            v.joined_at = ToMicros(joined_at, "joined_at");
            return v;
          },
          py::arg("token_id"), py::kw_only(), py::arg("user_id"), py::arg("join_seq"),
          py::arg("joined_at"))
      .def("__repr__", [](const QueueDigest& d) {
        return absl::StrCat("<boxoffice.QueueDigest concert_id=", d.concert_id(),
                            " waiting=", d.waiting(), " joined=", d.joined(), ">");
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

// The batch numbering of journal record type 13 (kLegacyBatchRecord), for display.
constexpr const char* kLegacyBatchOpNames[] = {
    "ADVANCE", "CREATE_USER", "JOIN",   "STATUS", "LEAVE",  "HOLD",
    "HOLD_BEST", "RELEASE_SEAT", "CANCEL", "CHARGE", "PAY", "REFUND"};

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
  if (c.legacy_batch.has_value()) {
    const BatchCommand& b = *c.legacy_batch;
    d["type"] = "BATCH";
    d["op"] = b.op < std::size(kLegacyBatchOpNames) ? py::object(py::str(kLegacyBatchOpNames[b.op]))
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
  d["type"] = std::string(OpName(c.op));
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

// --- the single commands: one vectorcall each, refusals raised without a C++ throw -------
//
// The commands are what a drop calls millions of times, so they skip pybind11's
// dispatcher: each is a METH_FASTCALL method that parses its arguments into a
// Command, calls Engine::Apply (holding the GIL: a microsecond call), and
// returns the view, or sets the typed exception and returns NULL. Raising
// through a C++ exception (ThrowStatus) costs several microseconds per refusal.

// Which Command field an argument fills.
enum class Field : uint8_t { kUser, kToken, kTarget, kArg, kSeats, kQuantity, kGrade, kKey, kNow };

struct Param {
  const char* name;
  Field field;
  bool required;
  PyObject* key = nullptr;  // `name` interned (CommandMethods): call sites pass interned names
};

struct CommandMethod {
  const char* name;
  Op op;
  int positional;  // how many params may be given by position (the rest are keyword-only)
  std::vector<Param> params;
};

// Sets `exc` for a bad argument of `method`; returns false.
bool ArgError(PyObject* exc, const CommandMethod& m, const std::string& what) {
  PyErr_SetString(exc, (std::string(m.name) + "(): " + what).c_str());
  return false;
}

bool IntArg(const CommandMethod& m, const Param& p, PyObject* o, int64_t* out) {
  int overflow = 0;
  if (PyLong_CheckExact(o)) {  // the common case, without PyNumber_Index's new reference
    *out = PyLong_AsLongLongAndOverflow(o, &overflow);
  } else {
    if (PyFloat_Check(o) || PyUnicode_Check(o) || PyBytes_Check(o)) {
      return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be an int");
    }
    PyObject* index = PyNumber_Index(o);  // int, bool, NumPy integers
    if (index == nullptr) {
      PyErr_Clear();
      return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be an int");
    }
    *out = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
  }
  if (overflow != 0) return ArgError(PyExc_TypeError, m, std::string(p.name) + " is out of range");
  return true;
}

bool TextArg(const CommandMethod& m, const Param& p, PyObject* o, std::string* out) {
  if (PyUnicode_Check(o)) {
    Py_ssize_t n = 0;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == nullptr) return false;
    out->assign(s, static_cast<size_t>(n));
    return true;
  }
  if (PyBytes_Check(o)) {
    out->assign(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
    return true;
  }
  return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be a str");
}

bool SeatsArg(const CommandMethod& m, const Param& p, PyObject* o, std::vector<SeatId>* out) {
  if (o == Py_None) return true;
  if (PyUnicode_Check(o) || PyBytes_Check(o)) {
    return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be a sequence of ints");
  }
  PyObject* seq = PySequence_Fast(o, "");
  if (seq == nullptr) {
    PyErr_Clear();
    return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be a sequence of ints");
  }
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  out->resize(static_cast<size_t>(n));
  bool ok = true;
  for (Py_ssize_t i = 0; ok && i < n; ++i) {
    ok = IntArg(m, p, PySequence_Fast_GET_ITEM(seq, i), &(*out)[static_cast<size_t>(i)]);
  }
  Py_DECREF(seq);
  return ok;
}

// Seconds (float or int) to microseconds; INVALID_ARGUMENT outside [0, 1e11).
bool NowArg(const CommandMethod& m, const Param& p, PyObject* o, TimeUs* out) {
  if (!PyFloat_Check(o) && !PyLong_Check(o)) {
    return ArgError(PyExc_TypeError, m, std::string(p.name) + " must be a number of seconds");
  }
  const double seconds = PyFloat_AsDouble(o);
  if (seconds == -1.0 && PyErr_Occurred()) return false;
  if (!std::isfinite(seconds) || seconds < 0 || seconds >= kSecondsMax) {
    SetStatusError(MakeError(ErrorCode::kInvalidArgument,
                             std::string(p.name) + " must be finite seconds in [0, 1e11)"));
    return false;
  }
  *out = static_cast<TimeUs>(std::llround(seconds * 1e6));
  return true;
}

bool FillField(const CommandMethod& m, const Param& p, PyObject* o, Command* c) {
  switch (p.field) {
    case Field::kUser: return IntArg(m, p, o, &c->user);
    case Field::kToken: return IntArg(m, p, o, &c->token);
    case Field::kTarget: return IntArg(m, p, o, &c->target);
    case Field::kArg: return IntArg(m, p, o, &c->arg);
    case Field::kQuantity: return IntArg(m, p, o, &c->quantity);
    case Field::kSeats: return SeatsArg(m, p, o, &c->seats);
    case Field::kGrade: return TextArg(m, p, o, &c->grade);
    case Field::kKey: return TextArg(m, p, o, &c->key);
    case Field::kNow: return NowArg(m, p, o, &c->now);
  }
  return false;
}

// The vectorcall arguments of `m` as a Command; false with the exception set.
bool ParseCommand(const CommandMethod& m, PyObject* const* args, Py_ssize_t nargs,
                  PyObject* kwnames, Command* c) {
  constexpr size_t kMaxParams = 8;
  const size_t n = m.params.size();
  PyObject* slots[kMaxParams] = {};
  if (nargs > m.positional) {
    return ArgError(PyExc_TypeError, m,
                    "takes at most " + std::to_string(m.positional) + " positional arguments");
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) slots[i] = args[i];
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    size_t i = 0;
    while (i < n && m.params[i].key != name) ++i;
    if (i == n) {  // a name built at run time, not the interned one: compare the text
      const char* key = PyUnicode_AsUTF8(name);
      if (key == nullptr) return false;
      i = 0;
      while (i < n && std::strcmp(m.params[i].name, key) != 0) ++i;
      if (i == n) {
        return ArgError(PyExc_TypeError, m, std::string("unexpected argument '") + key + "'");
      }
    }
    if (slots[i] != nullptr) {
      return ArgError(PyExc_TypeError, m,
                      std::string("argument '") + m.params[i].name + "' given twice");
    }
    slots[i] = args[nargs + k];
  }
  c->op = m.op;
  for (size_t i = 0; i < n; ++i) {
    if (slots[i] == nullptr) {
      if (m.params[i].required) {
        return ArgError(PyExc_TypeError, m,
                        std::string("missing required argument '") + m.params[i].name + "'");
      }
      continue;
    }
    if (!FillField(m, m.params[i], slots[i], c)) return false;
  }
  return true;
}

// `v` moved into a new instance of its bound class. py::cast does the same, but looks the
// class up by C++ type on every call; a command's answer is on the hot path, so the
// class is looked up once per type.
template <typename T>
py::object MoveToPython(T&& v) {
  static const py::detail::type_info* const type = py::detail::get_type_info(typeid(T));
  if (type == nullptr) return py::cast(std::move(v), py::return_value_policy::move);
  auto move = [](const void* p) -> void* {
    return new T(std::move(*const_cast<T*>(static_cast<const T*>(p))));
  };
  return py::reinterpret_steal<py::object>(py::detail::type_caster_generic::cast(
      py::detail::cast_sources(&v, type), py::return_value_policy::move, py::handle(), nullptr,
      move));
}

// The Python value of a successful result (a view object, a user id, or None).
py::object ResultValue(Result&& r) {
  return std::visit(
      [](auto&& v) -> py::object {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return py::none();
        } else if constexpr (std::is_class_v<T>) {
          return MoveToPython<T>(std::move(v));
        } else {
          return py::cast(std::move(v), py::return_value_policy::move);
        }
      },
      std::move(r.value));
}

const std::vector<CommandMethod>& CommandMethods() {
  static auto* const methods = new std::vector<CommandMethod>{
      {"create_user", Op::kCreateUser, 0, {{"now", Field::kNow, true}}},
      {"join_queue", Op::kJoin, 2,
       {{"user_id", Field::kUser, true}, {"concert_id", Field::kTarget, true}, {"now", Field::kNow, true}}},
      {"queue_status", Op::kStatus, 2,
       {{"user_id", Field::kUser, true}, {"token_id", Field::kToken, true}, {"now", Field::kNow, true}}},
      {"leave_queue", Op::kLeave, 2,
       {{"user_id", Field::kUser, true}, {"token_id", Field::kToken, true}, {"now", Field::kNow, true}}},
      {"check_gate", Op::kGate, 3,
       {{"user_id", Field::kUser, true}, {"token_id", Field::kToken, true},
        {"concert_id", Field::kTarget, true}, {"now", Field::kNow, true}}},
      {"hold", Op::kHold, 4,
       {{"user_id", Field::kUser, true}, {"token_id", Field::kToken, true},
        {"schedule_id", Field::kTarget, true}, {"seat_ids", Field::kSeats, false},
        {"quantity", Field::kQuantity, false}, {"grade", Field::kGrade, false},
        {"idempotency_key", Field::kKey, false}, {"now", Field::kNow, true}}},
      {"release_seat", Op::kReleaseSeat, 3,
       {{"user_id", Field::kUser, true}, {"reservation_id", Field::kTarget, true},
        {"seat_id", Field::kArg, true}, {"now", Field::kNow, true}}},
      {"cancel", Op::kCancel, 2,
       {{"user_id", Field::kUser, true}, {"reservation_id", Field::kTarget, true}, {"now", Field::kNow, true}}},
      {"charge", Op::kCharge, 2,
       {{"user_id", Field::kUser, true}, {"amount", Field::kArg, true},
        {"idempotency_key", Field::kKey, false}, {"now", Field::kNow, true}}},
      {"pay", Op::kPay, 3,
       {{"user_id", Field::kUser, true}, {"token_id", Field::kToken, true},
        {"reservation_id", Field::kTarget, true}, {"idempotency_key", Field::kKey, false},
        {"now", Field::kNow, true}}},
      {"refund", Op::kRefund, 2,
       {{"user_id", Field::kUser, true}, {"reservation_id", Field::kTarget, true}, {"now", Field::kNow, true}}},
      {"advance", Op::kAdvance, 0, {{"now", Field::kNow, true}}},
  };
  // First called at import (BindEngine), holding the GIL; the names live as long as the process.
  static const bool interned = [] {
    for (CommandMethod& m : *methods) {
      for (Param& p : m.params) p.key = PyUnicode_InternFromString(p.name);
    }
    return true;
  }();
  (void)interned;
  return *methods;
}

// The Engine of `self`, an instance of the Engine class (the method descriptor checked
// that). pybind11 keeps the value pointer of a one-base instance inline; reading it
// there skips the caster's type lookups (a command's call is on the hot path).
// Anything else, including an instance whose __init__ did not run, takes the caster.
Engine& SelfEngine(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  if (inst->simple_layout && inst->simple_holder_constructed) {
    return *static_cast<Engine*>(inst->simple_value_holder[0]);
  }
  return py::handle(self).cast<Engine&>();
}

template <size_t I>
PyObject* CommandMethodCall(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                            PyObject* kwnames) {
  try {
    const CommandMethod& m = CommandMethods()[I];
    Command c;
    if (!ParseCommand(m, args, nargs, kwnames, &c)) return nullptr;
    Engine& engine = SelfEngine(self);
    Result r = engine.Apply(c);
    if (!r.ok()) return SetError(RefusalException(r.code, r.message, r.details));
    return ResultValue(std::move(r)).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// The docstring ``help()`` shows for `cls_name.name`: the stub's signature line and text
// (python/boxoffice/_core.pyi is the one source), or nullptr when the stub documents none.
// The strings live as long as the process (a method's doc is read for its whole life).
const char* StubDoc(std::string_view cls_name, std::string_view name) {
  for (const stub_docs::StubDoc& d : stub_docs::kStubDocs) {
    if (cls_name != d.cls || name != d.name) continue;
    if (*d.signature == '\0') return d.doc;
    return (new std::string(absl::StrCat(d.signature, "\n\n", d.doc)))->c_str();
  }
  return nullptr;
}

// Gives the methods and properties pybind11 made for the module's classes the stub's
// docstrings (pybind11's own are the C++ signature only). A method's text is its PyMethodDef's,
// which pybind11 allocated with strdup and frees the same way.
void UseStubDocs(py::module_& m) {
  for (const stub_docs::StubDoc& d : stub_docs::kStubDocs) {
    if (!py::hasattr(m, d.cls)) continue;
    py::dict members = m.attr(d.cls).attr("__dict__");
    if (!members.contains(d.name)) continue;
    py::handle member = members[d.name];
    if (PyInstanceMethod_Check(member.ptr())) {
      auto* fn = reinterpret_cast<PyCFunctionObject*>(PyInstanceMethod_GET_FUNCTION(member.ptr()));
      std::free(const_cast<char*>(fn->m_ml->ml_doc));
      fn->m_ml->ml_doc = strdup(StubDoc(d.cls, d.name));
    } else if (PyObject_TypeCheck(member.ptr(), &PyProperty_Type)) {
      member.attr("__doc__") = py::str(d.doc);
    }
  }
}

template <size_t... I>
void AddCommandMethods(py::handle cls, std::index_sequence<I...>) {
  static PyMethodDef defs[] = {
      {CommandMethods()[I].name,
       reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&CommandMethodCall<I>)),
       METH_FASTCALL | METH_KEYWORDS, StubDoc("Engine", CommandMethods()[I].name)}...};
  for (PyMethodDef& def : defs) {
    py::object descr = py::reinterpret_steal<py::object>(
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &def));
    if (!descr) throw py::error_already_set();
    if (PyObject_SetAttrString(cls.ptr(), def.ml_name, descr.ptr()) != 0) {
      throw py::error_already_set();
    }
  }
}

constexpr size_t kCommandMethodCount = 12;

// A result's wire form as (code name, value or None, exception or None).
py::tuple DecodedResult(Result&& r) {
  const std::string code(GetErrorInfo(r.code).name);
  if (!r.ok()) {
    return py::make_tuple(code, py::none(), RefusalException(r.code, r.message, r.details));
  }
  return py::make_tuple(code, ResultValue(std::move(r)), py::none());
}

using EngineClass = py::class_<Engine, std::shared_ptr<Engine>>;

// Opening (in memory or a store) and the store's own operations.
void BindEngineStore(EngineClass& cls) {
  cls.def(py::init([](std::optional<std::string> path, const std::string& durability,
                       double group_commit_interval_s, int64_t snapshot_every_records,
                       uint64_t seed,
                       std::optional<Limits> limits,
                       std::optional<py::bytes> snapshot) -> std::shared_ptr<Engine> {
             if (!(group_commit_interval_s >= 0.0 &&
                   group_commit_interval_s <= absl::ToDoubleSeconds(kGroupCommitIntervalMax))) {
               ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                                     absl::StrCat("group_commit_interval_s must be in 0..1, got ",
                                                  group_commit_interval_s)));
             }
             if (snapshot) {  // an in-memory engine with the state of a snapshot
               if (path) {
                 ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                                       "give a store path or a snapshot, not both"));
               }
               const std::string_view bytes(*snapshot);
               absl::StatusOr<std::unique_ptr<Engine>> engine;
               {
                 py::gil_scoped_release nogil;
                 engine = LoadSnapshot(absl::string_view(bytes.data(), bytes.size()));
               }
               if (!engine.ok()) {  // whatever the bytes, one error: they are not a snapshot
                 ThrowStatus(MakeError(ErrorCode::kDataLoss, engine.status().message()));
               }
               return std::shared_ptr<Engine>(*std::move(engine));
             }
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
             options.group_commit_interval = absl::Seconds(group_commit_interval_s);
             absl::StatusOr<std::unique_ptr<Store>> store;
             {
               py::gil_scoped_release nogil;
               store = Store::Open(options);
             }
             if (!store.ok()) ThrowStatus(store.status());
             return Store::ShareEngine(std::shared_ptr<Store>(*std::move(store)));
           }),
           py::arg("path") = py::none(), py::kw_only(), py::arg("durability") = "full",
           py::arg("group_commit_interval_s") = 0.0,
           py::arg("snapshot_every_records") = 1'000'000, py::arg("seed") = 0,
           py::arg("limits") = py::none(), py::arg("snapshot") = py::none())
      .def("snapshot_bytes",
           [](Engine& e) {
             std::string bytes;
             {
               py::gil_scoped_release nogil;
               bytes = SaveSnapshot(e);
             }
             return py::bytes(bytes);
           })
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
      .def("_poll_durable",
           [](Engine& e, Seq seq) {
             absl::StatusOr<bool> durable = StoreOf(e)->PollDurable(seq);
             if (!durable.ok()) ThrowStatus(durable.status());
             return *durable;
           })
      .def("_add_durable_listener",
           [](Engine& e) {
             absl::StatusOr<int> fd = StoreOf(e)->AddDurableListener();
             if (!fd.ok()) ThrowStatus(fd.status());
             return *fd;
           })
      .def("_remove_durable_listener",
           [](Engine& e, int fd) { StoreOf(e)->RemoveDurableListener(fd); })
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
      ;
}

// Settings, counters and the queries (each first advances to `now`).
void BindEngineQueries(EngineClass& cls) {
  cls.def_property_readonly("limits", [](const Engine& e) { return Limits(e.limits()); })
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
            const int64_t n = PageLimit(limit);
            return Released([&] { return e.ListSeats(schedule, st, after, n, t); });
          },
          py::arg("schedule_id"), py::arg("status") = py::none(), py::kw_only(),
          py::arg("after") = 0, py::arg("limit") = py::none(), py::arg("now"))
      .def(
          "gated_seats",
          [](Engine& e, UserId user, TokenId token, ConcertId concert, ScheduleId schedule,
             std::optional<std::string> status, SeatId after, std::optional<int64_t> limit,
             double now) {
            const std::optional<SeatStatus> st = ParseSeatStatus(status);
            const TimeUs t = ToMicros(now, "now");
            const int64_t n = PageLimit(limit);
            return Released(
                [&] { return e.ListSeatsGated(user, token, concert, schedule, st, after, n, t); });
          },
          py::arg("user_id"), py::arg("token_id"), py::arg("concert_id"), py::arg("schedule_id"),
          py::arg("status") = py::none(), py::kw_only(), py::arg("after") = 0,
          py::arg("limit") = py::none(), py::arg("now"))
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
          "queue_digest",
          [](Engine& e, ConcertId concert, double now) {
            const TimeUs t = ToMicros(now, "now");
            return py::bytes(Held([&] { return e.EncodeQueueDigest(concert, t); }));
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
      ;
}

// Commands as values: journal records, the wire form, batches.
void BindEngineCommands(EngineClass& cls) {
  cls.def(
          "_replay_record",
          [](Engine& e, const py::bytes& record) {
            const Command c = Decode(record);
            py::gil_scoped_release nogil;
            (void)e.Apply(c);  // a command that failed when recorded fails again
          },
          py::arg("record"))
      .def(
          "apply_encoded",
          [](Engine& e, const py::bytes& command) {
            const std::string_view view(command);
            absl::StatusOr<Command> c = DecodeCommand(absl::string_view(view.data(), view.size()));
            std::string out;
            {
              py::gil_scoped_release nogil;
              const Result r = c.ok() ? e.Apply(*c)
                                      : Result::Refused(Refusal(ErrorCode::kInvalidArgument,
                                                                std::string(c.status().message())));
              EncodeResult(r, &out);
            }
            return py::bytes(out);
          },
          py::arg("command"),
          "apply_encoded(command: bytes) -> bytes\n\n"
          "Applies one encoded command (encode_command) and returns its encoded result\n"
          "(decode_result). A refusal is a result with its code, never an exception; a\n"
          "malformed command is refused as INVALID_ARGUMENT and changes nothing.")
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

// encode_command(op, *, now, ...): the journal/wire encoding of one command.
py::bytes EncodeCommandArgs(const std::string& op, double now, int64_t user, int64_t token,
                            int64_t target, int64_t arg, int64_t quantity, std::string grade,
                            std::string key, std::vector<SeatId> seats,
                            std::optional<py::tuple> concert) {
  Command c;
  c.op = Op::kCount;
  for (int i = 0; i < kOpCount; ++i) {
    if (OpName(static_cast<Op>(i)) == op) c.op = static_cast<Op>(i);
  }
  if (c.op == Op::kCount) ThrowStatus(MakeError(ErrorCode::kInvalidArgument, "unknown op '" + op + "'"));
  c.now = ToMicros(now, "now");
  c.user = user;
  c.token = token;
  c.target = target;
  c.arg = arg;
  c.quantity = quantity;
  c.grade = std::move(grade);
  c.key = std::move(key);
  c.seats = std::move(seats);
  if (c.op == Op::kCreateConcert) {
    if (!concert || concert->size() != 5) {
      ThrowStatus(MakeError(ErrorCode::kInvalidArgument,
                            "CREATE_CONCERT needs concert=(title, artist, venue, schedules, sale)"));
    }
    // (title, artist, venue, schedules, sale or None), as Engine.create_concert takes them
    auto spec = std::make_shared<ConcertSpec>();
    spec->title = (*concert)[0].cast<std::string>();
    spec->artist = (*concert)[1].cast<std::string>();
    spec->venue = (*concert)[2].cast<std::string>();
    spec->schedules = (*concert)[3].cast<std::vector<ScheduleSpec>>();
    if (!(*concert)[4].is_none()) spec->sale = (*concert)[4].cast<SaleSettings>();
    c.concert = std::move(spec);
  }
  std::string out;
  EncodeCommand(c, &out);
  return py::bytes(out);
}

void BindEngine(py::module_& m) {
  EngineClass cls(m, "Engine");
  BindEngineStore(cls);
  BindEngineQueries(cls);
  BindEngineCommands(cls);
  if (CommandMethods().size() != kCommandMethodCount) throw std::logic_error("command methods");
  AddCommandMethods(cls, std::make_index_sequence<kCommandMethodCount>());
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
  for (int i = 0; i < kOpCount; ++i) ops[py::str(std::string(OpName(static_cast<Op>(i))))] = i;
  m.attr("OPS") = ops;
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
  m.def("encode_command", &EncodeCommandArgs, py::arg("op"), py::kw_only(), py::arg("now"),
        py::arg("user") = 0, py::arg("token") = 0, py::arg("target") = 0, py::arg("arg") = 0,
        py::arg("quantity") = 0, py::arg("grade") = "", py::arg("key") = "",
        py::arg("seats") = std::vector<SeatId>(), py::arg("concert") = py::none());
  m.def(
      "decode_result",
      [](const py::bytes& data) {
        const std::string_view view(data);
        absl::StatusOr<Result> r = DecodeResult(absl::string_view(view.data(), view.size()));
        if (!r.ok()) ThrowStatus(MakeError(ErrorCode::kDataLoss, r.status().message()));
        return DecodedResult(*std::move(r));
      },
      py::arg("data"));
  BindSettings(m);
  BindViews(m);
  BindEngine(m);
  UseStubDocs(m);
}
