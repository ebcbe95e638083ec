// Command encoding: see command.h for the format and why it exists.
#include "boxoffice/command.h"

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

}  // namespace

void EncodeCommand(const Command& c, std::string* out) {
  out->push_back(static_cast<char>(c.type));
  PutInt(c.now, out);
  switch (c.type) {
    case CommandType::kAdvance:
    case CommandType::kCreateUser:
      return;
    case CommandType::kCreateConcert:
      EncodeConcert(c.concert, out);
      return;
    case CommandType::kHold:
      PutInt(c.user, out);
      PutInt(c.token, out);
      PutInt(c.target, out);
      PutVarint(c.seats.size(), out);
      for (SeatId s : c.seats) PutInt(s, out);
      PutInt(c.quantity, out);
      PutString(c.grade, out);
      PutString(c.key, out);
      return;
    case CommandType::kBatchCommand: {
      const BatchCommand& b = c.batch;
      PutVarint(b.op, out);
      PutVarint(b.grade, out);
      PutVarint(b.quantity, out);
      PutInt(b.now_us, out);
      PutInt(b.user, out);
      PutInt(b.token, out);
      PutInt(b.target, out);
      PutInt(b.arg, out);
      return;
    }
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
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("malformed journal record (", why, ", ",
                                            record.size(), " bytes)"));
  };
  if (record.empty()) return corrupt("empty");
  const auto type = static_cast<uint8_t>(record.front());
  if (type >= static_cast<uint8_t>(CommandType::kCount)) return corrupt("unknown type");
  Command c;
  c.type = static_cast<CommandType>(type);
  Reader r(record.substr(1));
  if (!r.Int(&c.now)) return corrupt("truncated time");
  bool ok = true;
  switch (c.type) {
    case CommandType::kAdvance:
    case CommandType::kCreateUser:
      break;
    case CommandType::kCreateConcert:
      ok = DecodeConcert(r, &c.concert);
      break;
    case CommandType::kHold: {
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
    case CommandType::kBatchCommand: {
      uint64_t op = 0, grade = 0, quantity = 0;
      ok = r.Varint(&op) && r.Varint(&grade) && r.Varint(&quantity) && op <= 0xff &&
           grade <= 0xff && quantity <= 0xffff;
      BatchCommand& b = c.batch;
      b.op = static_cast<uint8_t>(op);
      b.grade = static_cast<uint8_t>(grade);
      b.quantity = static_cast<uint16_t>(quantity);
      ok = ok && r.Int(&b.now_us) && r.Int(&b.user) && r.Int(&b.token) && r.Int(&b.target) &&
           r.Int(&b.arg);
      break;
    }
    default:
      ok = r.Int(&c.user) && r.Int(&c.token) && r.Int(&c.target) && r.Int(&c.arg) &&
           r.String(&c.key);
      break;
  }
  if (!ok) return corrupt("truncated fields");
  if (!r.empty()) return corrupt("trailing bytes");
  return c;
}

bool operator==(const Command& a, const Command& b) {
  std::string x, y;
  EncodeCommand(a, &x);
  EncodeCommand(b, &y);
  return x == y;
}

}  // namespace boxoffice
