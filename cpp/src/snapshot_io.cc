// SnapshotWriter and SnapshotReader: see snapshot_io.h.
#include "boxoffice/snapshot_io.h"

#include "absl/strings/str_cat.h"

namespace boxoffice {
namespace {

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t u) {
  return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
}
// Wrapping arithmetic (no signed overflow whatever the input).
int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

}  // namespace

// --- writer ------------------------------------------------------------------------

void SnapshotWriter::Var(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void SnapshotWriter::Int(int64_t v) { Var(ZigZag(v)); }

void SnapshotWriter::Delta(int64_t v, int64_t base) { Int(WrapSub(v, base)); }

void SnapshotWriter::Fixed64(uint64_t v) {
  for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void SnapshotWriter::Str(absl::string_view s) {
  Count(s.size());
  out_.append(s.data(), s.size());
}

void SnapshotWriter::Time(TimeUs t, TimeUs base) {
  if (t == kNever) {
    Var(0);
  } else {
    Var(ZigZag(WrapSub(t, base)) + 1);
  }
}

// --- reader ------------------------------------------------------------------------

void SnapshotReader::Fail(absl::string_view what) {
  if (status_.ok()) {
    status_ = absl::DataLossError(
        absl::StrCat("damaged snapshot: ", what, " (body byte ", pos_, ")"));
  }
  pos_ = data_.size();
}

uint8_t SnapshotReader::U8() {
  if (pos_ >= data_.size()) {
    Fail("unexpected end of the body");
    return 0;
  }
  return static_cast<uint8_t>(data_[pos_++]);
}

bool SnapshotReader::Bool(absl::string_view what) {
  const uint8_t v = U8();
  if (v > 1) Fail(absl::StrCat(what, " is not a boolean"));
  return v == 1;
}

void SnapshotReader::Section(uint8_t want, absl::string_view name) {
  const uint8_t got = U8();
  if (ok() && got != want) {
    Fail(absl::StrCat("expected the ", name, " section, found tag ", got));
  }
}

uint64_t SnapshotReader::Var() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) {
      Fail("truncated varint");
      return 0;
    }
    const auto b = static_cast<uint8_t>(data_[pos_++]);
    if (shift == 63 && b > 1) {
      Fail("varint overflows 64 bits");
      return 0;
    }
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return v;  // unreachable: the 10th byte either ends the varint or fails
}

int64_t SnapshotReader::Int() { return UnZigZag(Var()); }

int64_t SnapshotReader::Int(absl::string_view what, int64_t lo, int64_t hi) {
  const int64_t v = Int();
  if (ok() && (v < lo || v > hi)) {
    Fail(absl::StrCat(what, " = ", v, " is outside [", lo, ", ", hi, "]"));
    return lo;
  }
  return v;
}

int64_t SnapshotReader::Delta(int64_t base) { return WrapAdd(base, Int()); }

uint64_t SnapshotReader::Fixed64() {
  if (remaining() < 8) {
    Fail("unexpected end of the body");
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + static_cast<size_t>(i)]))
         << (8 * i);
  }
  pos_ += 8;
  return v;
}

size_t SnapshotReader::Count(absl::string_view what, size_t min_bytes) {
  const uint64_t n = Var();
  if (!ok()) return 0;
  if (n > remaining() / min_bytes) {
    Fail(absl::StrCat(what, ": ", n, " items of at least ", min_bytes,
                      " bytes do not fit in the ", remaining(), " bytes left"));
    return 0;
  }
  return static_cast<size_t>(n);
}

std::string SnapshotReader::Str(absl::string_view what) {
  const size_t n = Count(what, 1);
  if (!ok()) return {};
  std::string s(data_.substr(pos_, n));
  pos_ += n;
  return s;
}

TimeUs SnapshotReader::Time(absl::string_view what, TimeUs base, bool never_ok) {
  const uint64_t v = Var();
  if (!ok()) return 0;
  if (v == 0) {
    if (!never_ok) Fail(absl::StrCat(what, " is missing"));
    return kNever;
  }
  const TimeUs t = WrapAdd(base, UnZigZag(v - 1));
  if (t < 0 || t >= kSnapshotTimeLimit) {
    Fail(absl::StrCat(what, " = ", t, " is not a valid time"));
    return 0;
  }
  return t;
}

TimeUs SnapshotReader::Past(absl::string_view what, TimeUs base, TimeUs clock, bool never_ok) {
  const TimeUs t = Time(what, base, never_ok);
  if (ok() && t > clock) Fail(absl::StrCat(what, " = ", t, " is after the clock ", clock));
  return t;
}

}  // namespace boxoffice
