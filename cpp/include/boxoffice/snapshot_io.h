// SnapshotWriter and SnapshotReader: the byte level of a snapshot's body
// (snapshot.h gives the whole format).
//
// Each component encodes its own state with a writer and decodes it with a
// reader (AdmissionQueue::Encode, SeatInventory::DecodeSeats, Ledger::
// DecodeAccounts, HoldTimer, EventLog, and the engine's own tables in
// engine_state.cc); the engine writes the sections in their order, and
// snapshot.cc frames the body with the header and the checksum. So the only
// code that knows a component's private members is the component's own.
//
// Integers are LEB128 varints, signed ones zigzag-mapped first; a time is a
// zigzag delta from a nearby time (short when close) and kNever is 0.
//
// The reader trusts nothing. It keeps the first problem as DATA_LOSS naming
// what and where; after it every read returns 0 and every count 0, so
// decoding winds down without allocating, and a caller checks ok() before it
// uses what it read as an index. A count is checked against the bytes left
// before anything is allocated for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "boxoffice/types.h"

namespace boxoffice {

// Times and durations in a snapshot lie in [0, kSnapshotTimeLimit), so that
// any sum of two stays in int64.
inline constexpr int64_t kSnapshotTimeLimit = int64_t{1} << 62;

class SnapshotWriter {
 public:
  // The body starts after `reserved` zero bytes (room for the framing's header).
  explicit SnapshotWriter(size_t reserved = 0) : out_(reserved, '\0') {}

  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void Var(uint64_t v);
  void Count(size_t n) { Var(static_cast<uint64_t>(n)); }
  void Int(int64_t v);
  // `v` as its difference from `base` (wrapping), for ascending ids.
  void Delta(int64_t v, int64_t base);
  void Fixed64(uint64_t v);
  void Str(absl::string_view s);
  // A time as a delta from `base`; kNever is 0.
  void Time(TimeUs t, TimeUs base);

  // What was written, reserved bytes first.
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class SnapshotReader {
 public:
  // `version` is the format version of the bytes (snapshot.h), for the few
  // records whose layout changed.
  SnapshotReader(absl::string_view body, uint16_t version) : data_(body), version_(version) {}

  uint16_t version() const { return version_; }
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool AtEnd() const { return pos_ == data_.size(); }

  // Records the first problem (DATA_LOSS "damaged snapshot: <what> (body byte N)").
  void Fail(absl::string_view what);
  // Fails with `what` unless `cond`; returns whether cond held and nothing failed before.
  bool Check(bool cond, absl::string_view what) {
    if (!cond) Fail(what);
    return cond && ok();
  }

  uint8_t U8();
  bool Bool(absl::string_view what);
  // A one-byte enum with `count` values.
  template <typename E>
  E Enum(absl::string_view what, int count) {
    const uint8_t v = U8();
    if (v >= count) {
      Fail(absl::StrCat(what, " has an unknown value ", v));
      return E{};
    }
    return static_cast<E>(v);
  }
  // The one-byte tag `want` that opens the section called `name`.
  void Section(uint8_t want, absl::string_view name);
  uint64_t Var();
  int64_t Int();
  // An integer that must lie in [lo, hi].
  int64_t Int(absl::string_view what, int64_t lo, int64_t hi);
  // A value written by SnapshotWriter::Delta with the same base.
  int64_t Delta(int64_t base);
  uint64_t Fixed64();
  // A number of items that each take at least `min_bytes` of what is left:
  // a count that cannot fit is damage, found before anything is allocated.
  size_t Count(absl::string_view what, size_t min_bytes);
  std::string Str(absl::string_view what);
  // A time written by SnapshotWriter::Time with the same base, in
  // [0, kSnapshotTimeLimit); kNever only when `never_ok`.
  TimeUs Time(absl::string_view what, TimeUs base, bool never_ok = false);
  // A time when something happened: also not after the engine's clock.
  TimeUs Past(absl::string_view what, TimeUs base, TimeUs clock, bool never_ok = false);

 private:
  absl::string_view data_;
  size_t pos_ = 0;
  uint16_t version_;
  absl::Status status_;
};

}  // namespace boxoffice
