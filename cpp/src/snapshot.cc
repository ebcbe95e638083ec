// Snapshot: see snapshot.h for the format, what is stored, what is rebuilt and
// why. This file frames the body (magic, version, length, checksum); the body
// is the engine's to write and read, section by section, each component its
// own part (engine_state.cc, snapshot_io.h).
#include "boxoffice/snapshot.h"

#include <cstring>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "boxoffice/digest.h"
#include "boxoffice/errors.h"
#include "boxoffice/snapshot_io.h"

namespace boxoffice {
namespace {

constexpr size_t kMagicBytes = 6;
constexpr size_t kHeaderBytes = kMagicBytes + 2 + 8;  // magic, version, body length
constexpr size_t kChecksumBytes = 8;

void PutFixed(std::string& out, size_t at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out[at + static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}
uint64_t GetFixed(absl::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[at + static_cast<size_t>(i)])) << (8 * i);
  }
  return v;
}

uint64_t Checksum(absl::string_view covered) {
  Digest d;
  d.Mix(covered);
  return d.value();
}

// The header and the version checks of LoadSnapshot: the version, or the error.
absl::StatusOr<uint16_t> CheckHeader(absl::string_view bytes) {
  const absl::string_view magic(kSnapshotMagic, kMagicBytes);
  if (bytes.size() < kMagicBytes && bytes == magic.substr(0, bytes.size())) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes"));
  }
  if (bytes.substr(0, kMagicBytes) != magic) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "not a boxoffice snapshot: the bytes do not start with \"BXSNAP\"");
  }
  if (bytes.size() < kMagicBytes + 2) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes (no version)"));
  }
  const auto version = static_cast<uint16_t>(GetFixed(bytes, kMagicBytes, 2));
  if (version < kSnapshotVersionOldest || version > kSnapshotVersion) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("snapshot format version ", version,
                                  version > kSnapshotVersion ? " is newer than" : " is unknown to",
                                  " this boxoffice, which reads versions ",
                                  kSnapshotVersionOldest, " to ", kSnapshotVersion,
                                  "; upgrade boxoffice to load it"));
  }
  return version;
}

// The body between header and checksum, once its length and checksum agree.
absl::StatusOr<absl::string_view> CheckedBody(absl::string_view bytes) {
  if (bytes.size() < kHeaderBytes + kChecksumBytes) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: truncated to ", bytes.size(), " bytes"));
  }
  const uint64_t body_bytes = GetFixed(bytes, kMagicBytes + 2, 8);
  const uint64_t have = bytes.size() - kHeaderBytes - kChecksumBytes;
  if (body_bytes != have) {
    return absl::DataLossError(absl::StrCat(
        "damaged snapshot: ", body_bytes > have ? "truncated: " : "wrong length: ",
        "the header says ", body_bytes, " body bytes, there are ", have));
  }
  const size_t covered = bytes.size() - kChecksumBytes;
  const uint64_t stored = GetFixed(bytes, covered, 8);
  if (Checksum(bytes.substr(0, covered)) != stored) {
    return absl::DataLossError("damaged snapshot: checksum mismatch");
  }
  return bytes.substr(kHeaderBytes, static_cast<size_t>(body_bytes));
}

}  // namespace

std::string SnapshotCodec::Save(Engine& engine, Seq* journal_seq) {
  SnapshotWriter w(kHeaderBytes);  // the header is filled in below
  engine.EncodeState(w, journal_seq);
  std::string& out = w.bytes();
  std::memcpy(out.data(), kSnapshotMagic, kMagicBytes);
  PutFixed(out, kMagicBytes, kSnapshotVersion, 2);
  PutFixed(out, kMagicBytes + 2, out.size() - kHeaderBytes, 8);
  w.Fixed64(Checksum(out));
  return std::move(out);
}

absl::StatusOr<std::unique_ptr<Engine>> SnapshotCodec::Load(absl::string_view bytes) {
  absl::StatusOr<uint16_t> version = CheckHeader(bytes);
  if (!version.ok()) return version.status();
  absl::StatusOr<absl::string_view> body = CheckedBody(bytes);
  if (!body.ok()) return body.status();
  SnapshotReader r(*body, *version);
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::DecodeState(r);
  if (!engine.ok()) return engine.status();
  if (absl::Status s = (*engine)->CheckInvariants(); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("damaged snapshot: the restored state fails its invariants: ", s.message()));
  }
  return engine;
}

std::string SaveSnapshot(Engine& engine, Seq* journal_seq) {
  return SnapshotCodec::Save(engine, journal_seq);
}

absl::StatusOr<std::unique_ptr<Engine>> LoadSnapshot(absl::string_view bytes) {
  return SnapshotCodec::Load(bytes);
}

}  // namespace boxoffice
