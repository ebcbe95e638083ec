// The error code table and the Status payloads that carry code and details.
#include "boxoffice/errors.h"

#include <array>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace boxoffice {
namespace {

constexpr absl::string_view kCodePayload = "boxoffice/code";
constexpr absl::string_view kPositionPayload = "boxoffice/position";
constexpr absl::string_view kEtaPayload = "boxoffice/eta_us";
constexpr absl::string_view kSeatPayload = "boxoffice/seat_id";
constexpr absl::string_view kRetryPayload = "boxoffice/retry_after_us";

constexpr std::array<ErrorInfo, kErrorCodeCount> kTable = {{
#define BOXOFFICE_X(e, name, absl_code, http) \
  {ErrorCode::e, name, absl::StatusCode::absl_code, http},
    BOXOFFICE_ERROR_CODES(BOXOFFICE_X)
#undef BOXOFFICE_X
}};

void PutInt(absl::Status& s, absl::string_view key, const std::optional<int64_t>& v) {
  if (v.has_value()) s.SetPayload(key, absl::Cord(std::to_string(*v)));
}

std::optional<int64_t> GetInt(const absl::Status& s, absl::string_view key) {
  auto c = s.GetPayload(key);
  if (!c.has_value()) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(std::string(*c), &v)) return std::nullopt;
  return v;
}

}  // namespace

const ErrorInfo& GetErrorInfo(ErrorCode code) {
  const auto i = static_cast<size_t>(code);
  return i < kTable.size() ? kTable[i] : kTable[static_cast<size_t>(ErrorCode::kInternal)];
}

absl::Status MakeError(ErrorCode code, absl::string_view message, const ErrorDetails& details) {
  const ErrorInfo& info = GetErrorInfo(code);
  absl::Status s(info.status_code, message);
  // The payload is the numeric code, so reading it back is an index, not a search.
  const char code_byte[2] = {static_cast<char>(static_cast<uint16_t>(code) & 0xff),
                             static_cast<char>(static_cast<uint16_t>(code) >> 8)};
  s.SetPayload(kCodePayload, absl::Cord(absl::string_view(code_byte, 2)));
  PutInt(s, kPositionPayload, details.position);
  PutInt(s, kEtaPayload, details.eta_us);
  PutInt(s, kSeatPayload, details.seat_id);
  PutInt(s, kRetryPayload, details.retry_after_us);
  return s;
}

ErrorCode GetErrorCode(const absl::Status& status) {
  if (status.ok()) return ErrorCode::kOk;
  auto c = status.GetPayload(kCodePayload);
  if (!c.has_value() || c->size() != 2) return ErrorCode::kInternal;
  const std::string bytes(*c);  // two bytes: no allocation (small-string buffer)
  const auto code = static_cast<uint16_t>(static_cast<uint8_t>(bytes[0]) |
                                          (static_cast<uint8_t>(bytes[1]) << 8));
  return code < kErrorCodeCount ? static_cast<ErrorCode>(code) : ErrorCode::kInternal;
}

bool HasErrorCode(const absl::Status& status) {
  return status.ok() || status.GetPayload(kCodePayload).has_value();
}

ErrorDetails GetErrorDetails(const absl::Status& status) {
  ErrorDetails d;
  d.position = GetInt(status, kPositionPayload);
  d.eta_us = GetInt(status, kEtaPayload);
  d.seat_id = GetInt(status, kSeatPayload);
  d.retry_after_us = GetInt(status, kRetryPayload);
  return d;
}

}  // namespace boxoffice
