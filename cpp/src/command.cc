// Command encoding: see command.h for the format and why it exists.
#include "boxoffice/command.h"

#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace boxoffice {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Zig-zag: small negative numbers (kNever, kNoLimit) stay one byte.
void PutInt(int64_t v, std::string* out) {
  PutVarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63), out);
}

void PutString(absl::string_view s, std::string* out) {
  PutVarint(s.size(), out);
  out->append(s.data(), s.size());
}

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}

  // Only the shortest form PutVarint writes, so a record has exactly one encoding:
  // a padded varint (a last byte of 0 after the first) or one beyond 64 bits (a tenth
  // byte above 1, whose bits would be dropped) is malformed, not another way to say it.
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return false;
      const auto byte = static_cast<uint8_t>(in_.front());
      in_.remove_prefix(1);
      if (shift == 63 && byte > 1) return false;
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0) return false;
        *v = result;
        return true;
      }
    }
    return false;  // more than 10 bytes: not a varint we wrote
  }
  bool Int(int64_t* v) {
    uint64_t u = 0;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
    return true;
  }
  bool String(std::string* s) {
    uint64_t n = 0;
    if (!Varint(&n) || n > in_.size()) return false;
    s->assign(in_.data(), static_cast<size_t>(n));
    in_.remove_prefix(static_cast<size_t>(n));
    return true;
  }
  // An enum value stored as a varint: at most `max`.
  template <typename E>
  bool Enum(E* e, uint64_t max) {
    uint64_t v = 0;
    if (!Varint(&v) || v > max) return false;
    *e = static_cast<E>(v);
    return true;
  }
  // A count of items that each take at least one byte.
  bool Count(uint64_t* n) { return Varint(n) && *n <= in_.size(); }
  bool empty() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

void EncodeConcert(const ConcertSpec& c, std::string* out) {
  PutString(c.title, out);
  PutString(c.artist, out);
  PutString(c.venue, out);
  PutVarint(c.schedules.size(), out);
  for (const ScheduleSpec& s : c.schedules) {
    PutInt(s.starts_at, out);
    PutVarint(s.sections.size(), out);
    for (const SectionSpec& sec : s.sections) {
      PutString(sec.name, out);
      PutInt(sec.rows, out);
      PutInt(sec.seats_per_row, out);
      PutString(sec.grade, out);
      PutInt(sec.price, out);
    }
  }
  const SaleSettings& sale = c.sale;
  PutInt(sale.opens_at, out);
  PutInt(sale.queue_capacity, out);
  PutInt(sale.admission_per_minute, out);
  PutInt(sale.session_ttl_us, out);
  PutInt(sale.hold_ttl_us, out);
  PutInt(sale.max_seats_per_reservation, out);
  PutInt(sale.max_seats_per_user, out);
  PutInt(sale.release_on_payment_failure ? 1 : 0, out);
  PutInt(sale.abandon_timeout_us, out);
  PutInt(sale.poll_interval_us, out);
}

bool DecodeConcert(Reader& r, ConcertSpec* c) {
  uint64_t schedules = 0;
  if (!r.String(&c->title) || !r.String(&c->artist) || !r.String(&c->venue) ||
      !r.Count(&schedules)) {
    return false;
  }
  for (uint64_t i = 0; i < schedules; ++i) {
    ScheduleSpec s;
    uint64_t sections = 0;
    if (!r.Int(&s.starts_at) || !r.Count(&sections)) return false;
    for (uint64_t j = 0; j < sections; ++j) {
      SectionSpec sec;
      if (!r.String(&sec.name) || !r.Int(&sec.rows) || !r.Int(&sec.seats_per_row) ||
          !r.String(&sec.grade) || !r.Int(&sec.price)) {
        return false;
      }
      s.sections.push_back(std::move(sec));
    }
    c->schedules.push_back(std::move(s));
  }
  SaleSettings& sale = c->sale;
  int64_t release = 0;
  if (!r.Int(&sale.opens_at) || !r.Int(&sale.queue_capacity) ||
      !r.Int(&sale.admission_per_minute) || !r.Int(&sale.session_ttl_us) ||
      !r.Int(&sale.hold_ttl_us) || !r.Int(&sale.max_seats_per_reservation) ||
      !r.Int(&sale.max_seats_per_user) || !r.Int(&release) || !r.Int(&sale.abandon_timeout_us) ||
      !r.Int(&sale.poll_interval_us) || (release != 0 && release != 1)) {
    return false;
  }
  sale.release_on_payment_failure = release == 1;
  return true;
}

absl::Status Corrupt(absl::string_view what, absl::string_view why, size_t size) {
  return absl::DataLossError(absl::StrCat("malformed ", what, " (", why, ", ", size, " bytes)"));
}

void EncodeLegacyBatch(const BatchCommand& b, std::string* out) {
  PutVarint(b.op, out);
  PutVarint(b.grade, out);
  PutVarint(b.quantity, out);
  PutInt(b.now_us, out);
  PutInt(b.user, out);
  PutInt(b.token, out);
  PutInt(b.target, out);
  PutInt(b.arg, out);
}

bool DecodeLegacyBatch(Reader& r, BatchCommand* b) {
  uint64_t op = 0, grade = 0, quantity = 0;
  if (!r.Varint(&op) || !r.Varint(&grade) || !r.Varint(&quantity) || op > 0xff ||
      grade > 0xff || quantity > 0xffff) {
    return false;
  }
  b->op = static_cast<uint8_t>(op);
  b->grade = static_cast<uint8_t>(grade);
  b->quantity = static_cast<uint16_t>(quantity);
  return r.Int(&b->now_us) && r.Int(&b->user) && r.Int(&b->token) && r.Int(&b->target) &&
         r.Int(&b->arg);
}

}  // namespace

absl::string_view OpName(Op op) {
  switch (op) {
#define BOXOFFICE_X(e, v, name) \
  case Op::e:                   \
    return name;
    BOXOFFICE_OPS(BOXOFFICE_X)
#undef BOXOFFICE_X
    case Op::kCount:
      break;
  }
  return "";
}

void EncodeCommand(const Command& c, std::string* out) {
  if (c.legacy_batch.has_value()) {
    out->push_back(static_cast<char>(kLegacyBatchRecord));
    PutInt(c.now, out);
    EncodeLegacyBatch(*c.legacy_batch, out);
    return;
  }
  out->push_back(static_cast<char>(c.op));
  PutInt(c.now, out);
  switch (c.op) {
    case Op::kAdvance:
    case Op::kCreateUser:
      return;
    case Op::kCreateConcert:
      EncodeConcert(c.concert != nullptr ? *c.concert : ConcertSpec{}, out);
      return;
    case Op::kHold:
      PutInt(c.user, out);
      PutInt(c.token, out);
      PutInt(c.target, out);
      PutVarint(c.seats.size(), out);
      for (SeatId s : c.seats) PutInt(s, out);
      PutInt(c.quantity, out);
      PutString(c.grade, out);
      PutString(c.key, out);
      return;
    default:
      // The scalar commands share one layout; unused fields are zeros (1 byte each).
      PutInt(c.user, out);
      PutInt(c.token, out);
      PutInt(c.target, out);
      PutInt(c.arg, out);
      PutString(c.key, out);
      return;
  }
}

absl::StatusOr<Command> DecodeCommand(absl::string_view record) {
  auto corrupt = [&](absl::string_view why) { return Corrupt("journal record", why, record.size()); };
  if (record.empty()) return corrupt("empty");
  const auto type = static_cast<uint8_t>(record.front());
  if (type >= kOpCount && type != kLegacyBatchRecord) return corrupt("unknown type");
  Command c;
  Reader r(record.substr(1));
  if (!r.Int(&c.now)) return corrupt("truncated time");
  bool ok = true;
  if (type == kLegacyBatchRecord) {
    ok = DecodeLegacyBatch(r, &c.legacy_batch.emplace());
  } else {
    c.op = static_cast<Op>(type);
    switch (c.op) {
      case Op::kAdvance:
      case Op::kCreateUser:
        break;
      case Op::kCreateConcert: {
        auto spec = std::make_shared<ConcertSpec>();
        ok = DecodeConcert(r, spec.get());
        c.concert = std::move(spec);
        break;
      }
      case Op::kHold: {
        uint64_t seats = 0;
        ok = r.Int(&c.user) && r.Int(&c.token) && r.Int(&c.target) && r.Count(&seats);
        for (uint64_t i = 0; ok && i < seats; ++i) {
          int64_t s = 0;
          ok = r.Int(&s);
          c.seats.push_back(s);
        }
        ok = ok && r.Int(&c.quantity) && r.String(&c.grade) && r.String(&c.key);
        break;
      }
      default:
        ok = r.Int(&c.user) && r.Int(&c.token) && r.Int(&c.target) && r.Int(&c.arg) &&
             r.String(&c.key);
        break;
    }
  }
  if (!ok) return corrupt("truncated fields");
  if (!r.empty()) return corrupt("trailing bytes");
  return c;
}

// --- results -------------------------------------------------------------------

namespace {

// Which ErrorDetails are present, one bit each, in this order.
constexpr uint64_t kDetailBits = 4;

void EncodeToken(const TokenView& t, std::string* out) {
  PutInt(t.id, out);
  PutInt(t.user_id, out);
  PutInt(t.concert_id, out);
  PutVarint(static_cast<uint64_t>(t.status), out);
  PutVarint(static_cast<uint64_t>(t.end), out);
  PutInt(t.position, out);
  PutInt(t.join_seq, out);
  PutInt(t.eta_us, out);
  PutInt(t.poll_after_us, out);
  PutInt(t.joined_at, out);
  PutInt(t.activated_at, out);
  PutInt(t.expires_at, out);
  PutInt(t.ended_at, out);
  PutVarint(t.created ? 1 : 0, out);
}

bool DecodeToken(Reader& r, TokenView* t) {
  return r.Int(&t->id) && r.Int(&t->user_id) && r.Int(&t->concert_id) &&
         r.Enum(&t->status, static_cast<uint64_t>(TokenStatus::kExpired)) &&
         r.Enum(&t->end, static_cast<uint64_t>(TokenEnd::kCompleted)) && r.Int(&t->position) &&
         r.Int(&t->join_seq) && r.Int(&t->eta_us) && r.Int(&t->poll_after_us) && r.Int(&t->joined_at) &&
         r.Int(&t->activated_at) && r.Int(&t->expires_at) && r.Int(&t->ended_at) &&
         r.Enum(&t->created, 1);
}

void EncodeReservation(const Reservation& v, std::string* out) {
  PutInt(v.id, out);
  PutInt(v.user_id, out);
  PutInt(v.concert_id, out);
  PutInt(v.schedule_id, out);
  PutInt(v.token_id, out);
  PutVarint(static_cast<uint64_t>(v.status), out);
  PutVarint(v.seat_ids.size(), out);
  for (SeatId s : v.seat_ids) PutInt(s, out);
  PutInt(v.amount, out);
  PutInt(v.created_at, out);
  PutInt(v.expires_at, out);
  PutInt(v.ended_at, out);
  PutInt(v.payment_id, out);
}

bool DecodeReservation(Reader& r, Reservation* v) {
  uint64_t seats = 0;
  if (!r.Int(&v->id) || !r.Int(&v->user_id) || !r.Int(&v->concert_id) ||
      !r.Int(&v->schedule_id) || !r.Int(&v->token_id) ||
      !r.Enum(&v->status, static_cast<uint64_t>(ReservationStatus::kRefunded)) ||
      !r.Count(&seats)) {
    return false;
  }
  for (uint64_t i = 0; i < seats; ++i) {
    int64_t s = 0;
    if (!r.Int(&s)) return false;
    v->seat_ids.push_back(s);
  }
  return r.Int(&v->amount) && r.Int(&v->created_at) && r.Int(&v->expires_at) &&
         r.Int(&v->ended_at) && r.Int(&v->payment_id);
}

void EncodeConcertView(const ConcertView& v, std::string* out) {
  PutInt(v.id, out);
  PutInt(v.created_at, out);
  ConcertSpec spec;  // title, artist, venue and sale in the command's layout
  spec.title = v.title;
  spec.artist = v.artist;
  spec.venue = v.venue;
  spec.sale = v.sale;
  EncodeConcert(spec, out);
  PutVarint(v.grades.size(), out);
  for (const std::string& g : v.grades) PutString(g, out);
  PutVarint(v.schedules.size(), out);
  for (const ScheduleView& s : v.schedules) {
    PutInt(s.id, out);
    PutInt(s.concert_id, out);
    PutInt(s.starts_at, out);
    PutInt(s.seats_total, out);
    PutInt(s.seats_available, out);
    PutInt(s.seats_held, out);
    PutInt(s.seats_sold, out);
  }
}

bool DecodeConcertView(Reader& r, ConcertView* v) {
  ConcertSpec spec;
  uint64_t grades = 0, schedules = 0;
  if (!r.Int(&v->id) || !r.Int(&v->created_at) || !DecodeConcert(r, &spec) ||
      !spec.schedules.empty() || !r.Count(&grades)) {
    return false;
  }
  v->title = std::move(spec.title);
  v->artist = std::move(spec.artist);
  v->venue = std::move(spec.venue);
  v->sale = spec.sale;
  for (uint64_t i = 0; i < grades; ++i) {
    if (!r.String(&v->grades.emplace_back())) return false;
  }
  if (!r.Count(&schedules)) return false;
  for (uint64_t i = 0; i < schedules; ++i) {
    ScheduleView& s = v->schedules.emplace_back();
    if (!r.Int(&s.id) || !r.Int(&s.concert_id) || !r.Int(&s.starts_at) ||
        !r.Int(&s.seats_total) || !r.Int(&s.seats_available) || !r.Int(&s.seats_held) ||
        !r.Int(&s.seats_sold)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status Result::status() const {
  return ok() ? absl::OkStatus() : MakeError(code, message, details);
}

Result Result::Refused(const absl::Status& status) {
  Result r;  // filled in place: no Refusal in between
  r.code = GetErrorCodeAndDetails(status, &r.details);
  r.message.assign(status.message().data(), status.message().size());
  return r;
}

Result Result::Refused(Refusal refusal) {
  return Result{.code = refusal.code, .message = std::move(refusal.message),
                .details = refusal.details};
}

void EncodeResult(const Result& r, std::string* out) {
  PutVarint(static_cast<uint64_t>(r.code), out);
  if (!r.ok()) {
    PutString(r.message, out);
    const ErrorDetails& d = r.details;
    const std::optional<int64_t>* fields[] = {&d.position, &d.eta_us, &d.seat_id,
                                              &d.retry_after_us};
    uint64_t mask = 0;
    for (uint64_t i = 0; i < kDetailBits; ++i) {
      if (fields[i]->has_value()) mask |= uint64_t{1} << i;
    }
    PutVarint(mask, out);
    for (const auto* f : fields) {
      if (f->has_value()) PutInt(**f, out);
    }
    return;
  }
  PutVarint(static_cast<uint64_t>(r.kind()), out);
  std::visit(
      [out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, UserId>) {
          PutInt(v, out);
        } else if constexpr (std::is_same_v<T, TokenView>) {
          EncodeToken(v, out);
        } else if constexpr (std::is_same_v<T, Reservation>) {
          EncodeReservation(v, out);
        } else if constexpr (std::is_same_v<T, ChargeResult>) {
          PutInt(v.entry_id, out);
          PutInt(v.user_id, out);
          PutInt(v.amount, out);
          PutInt(v.balance, out);
          PutInt(v.at, out);
        } else if constexpr (std::is_same_v<T, Payment>) {
          PutInt(v.id, out);
          PutInt(v.reservation_id, out);
          PutInt(v.user_id, out);
          PutInt(v.amount, out);
          PutVarint(static_cast<uint64_t>(v.status), out);
          PutInt(v.paid_at, out);
          PutInt(v.balance_after, out);
        } else if constexpr (std::is_same_v<T, ConcertView>) {
          EncodeConcertView(v, out);
        }
      },
      r.value);
}

absl::StatusOr<Result> DecodeResult(absl::string_view bytes) {
  auto corrupt = [&](absl::string_view why) { return Corrupt("result", why, bytes.size()); };
  Reader r(bytes);
  Result out;
  if (!r.Enum(&out.code, static_cast<uint64_t>(kErrorCodeCount - 1))) {
    return corrupt("unknown code");
  }
  bool ok = true;
  if (!out.ok()) {
    uint64_t mask = 0;
    ErrorDetails& d = out.details;
    std::optional<int64_t>* fields[] = {&d.position, &d.eta_us, &d.seat_id, &d.retry_after_us};
    ok = r.String(&out.message) && r.Varint(&mask) && mask < (uint64_t{1} << kDetailBits);
    for (uint64_t i = 0; ok && i < kDetailBits; ++i) {
      if ((mask >> i & 1) == 0) continue;
      int64_t v = 0;
      ok = r.Int(&v);
      *fields[i] = v;
    }
  } else {
    Result::Kind kind = Result::Kind::kNone;
    ok = r.Enum(&kind, static_cast<uint64_t>(Result::Kind::kCount) - 1);
    switch (kind) {
      case Result::Kind::kNone:
        break;
      case Result::Kind::kUser: {
        int64_t id = 0;
        ok = ok && r.Int(&id);
        out.value = UserId{id};
        break;
      }
      case Result::Kind::kToken:
        ok = ok && DecodeToken(r, &out.value.emplace<TokenView>());
        break;
      case Result::Kind::kReservation:
        ok = ok && DecodeReservation(r, &out.value.emplace<Reservation>());
        break;
      case Result::Kind::kCharge: {
        ChargeResult& v = out.value.emplace<ChargeResult>();
        ok = ok && r.Int(&v.entry_id) && r.Int(&v.user_id) && r.Int(&v.amount) &&
             r.Int(&v.balance) && r.Int(&v.at);
        break;
      }
      case Result::Kind::kPayment: {
        Payment& v = out.value.emplace<Payment>();
        ok = ok && r.Int(&v.id) && r.Int(&v.reservation_id) && r.Int(&v.user_id) &&
             r.Int(&v.amount) && r.Enum(&v.status, static_cast<uint64_t>(PaymentStatus::kRefunded)) &&
             r.Int(&v.paid_at) && r.Int(&v.balance_after);
        break;
      }
      case Result::Kind::kConcert:
        ok = ok && DecodeConcertView(r, &out.value.emplace<ConcertView>());
        break;
      case Result::Kind::kCount:
        ok = false;
        break;
    }
  }
  if (!ok) return corrupt("truncated fields");
  if (!r.empty()) return corrupt("trailing bytes");
  return out;
}

bool operator==(const Command& a, const Command& b) {
  std::string x, y;
  EncodeCommand(a, &x);
  EncodeCommand(b, &y);
  return x == y;
}

}  // namespace boxoffice
