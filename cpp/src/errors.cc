// The error code table and the Status payloads that carry code and details.
#include "boxoffice/errors.h"

#include <array>
#include <optional>
#include <string>

#include "absl/strings/cord.h"

namespace boxoffice {
namespace {

// One payload carries the code and the details: two code bytes, a byte of which
// details are present, then each present detail as a zig-zag varint. A refusal is a
// normal answer on the hot path, so it is one small payload (inline in the Cord for
// typical values), not one payload per detail.
constexpr absl::string_view kErrorPayload = "boxoffice/error";

void PutVarint(int64_t signed_value, std::string* out) {
  auto v = (static_cast<uint64_t>(signed_value) << 1) ^ static_cast<uint64_t>(signed_value >> 63);
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(absl::string_view* in, int64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *out = static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
      return true;
    }
  }
  return false;
}

// The fields of ErrorDetails, in payload order.
std::optional<int64_t> ErrorDetails::*const kDetailFields[] = {
    &ErrorDetails::position, &ErrorDetails::eta_us, &ErrorDetails::seat_id,
    &ErrorDetails::retry_after_us};

// The code and details `status`'s payload carries: kInternal and none for a status
// without one. Reads the payload once, in place when its Cord is flat (a small one,
// as MakeError makes it, always is): refusals are read on the hot path.
ErrorCode ReadPayload(const absl::Status& status, ErrorDetails* details) {
  const auto c = status.GetPayload(kErrorPayload);  // absl::optional here, not std
  if (!c.has_value()) return ErrorCode::kInternal;
  std::string copy;
  absl::string_view bytes;
  if (const auto flat = c->TryFlat()) {
    bytes = *flat;
  } else {
    copy = std::string(*c);
    bytes = copy;
  }
  if (bytes.size() < 3) return ErrorCode::kInternal;
  const auto code = static_cast<uint16_t>(static_cast<uint8_t>(bytes[0]) |
                                          (static_cast<uint8_t>(bytes[1]) << 8));
  if (details != nullptr) {
    const auto mask = static_cast<uint8_t>(bytes[2]);
    absl::string_view rest = bytes.substr(3);
    for (size_t i = 0; i < std::size(kDetailFields); ++i) {
      if ((mask >> i & 1) == 0) continue;
      int64_t v = 0;
      if (!GetVarint(&rest, &v)) break;
      details->*kDetailFields[i] = v;
    }
  }
  return code < kErrorCodeCount ? static_cast<ErrorCode>(code) : ErrorCode::kInternal;
}

constexpr std::array<ErrorInfo, kErrorCodeCount> kTable = {{
#define BOXOFFICE_X(e, name, absl_code, http) \
  {ErrorCode::e, name, absl::StatusCode::absl_code, http},
    BOXOFFICE_ERROR_CODES(BOXOFFICE_X)
#undef BOXOFFICE_X
}};

}  // namespace

const ErrorInfo& GetErrorInfo(ErrorCode code) {
  const auto i = static_cast<size_t>(code);
  return i < kTable.size() ? kTable[i] : kTable[static_cast<size_t>(ErrorCode::kInternal)];
}

absl::Status MakeError(ErrorCode code, absl::string_view message, const ErrorDetails& details) {
  const ErrorInfo& info = GetErrorInfo(code);
  absl::Status s(info.status_code, message);
  std::string bytes;
  bytes.push_back(static_cast<char>(static_cast<uint16_t>(code) & 0xff));
  bytes.push_back(static_cast<char>(static_cast<uint16_t>(code) >> 8));
  uint8_t mask = 0;
  for (size_t i = 0; i < std::size(kDetailFields); ++i) {
    if ((details.*kDetailFields[i]).has_value()) mask = static_cast<uint8_t>(mask | (1u << i));
  }
  bytes.push_back(static_cast<char>(mask));
  for (const auto field : kDetailFields) {
    if ((details.*field).has_value()) PutVarint(*(details.*field), &bytes);
  }
  s.SetPayload(kErrorPayload, absl::Cord(bytes));
  return s;
}

ErrorCode GetErrorCode(const absl::Status& status) {
  return status.ok() ? ErrorCode::kOk : ReadPayload(status, nullptr);
}

bool HasErrorCode(const absl::Status& status) {
  return status.ok() || status.GetPayload(kErrorPayload).has_value();
}

ErrorDetails GetErrorDetails(const absl::Status& status) {
  ErrorDetails d;
  if (!status.ok()) ReadPayload(status, &d);
  return d;
}

absl::Status Refusal::ToStatus() const { return MakeError(code, message, details); }

ErrorCode GetErrorCodeAndDetails(const absl::Status& status, ErrorDetails* details) {
  return status.ok() ? ErrorCode::kOk : ReadPayload(status, details);
}

Refusal Refusal::FromStatus(const absl::Status& status) {
  Refusal r;
  r.code = GetErrorCodeAndDetails(status, &r.details);
  r.message.assign(status.message().data(), status.message().size());
  return r;
}

}  // namespace boxoffice
