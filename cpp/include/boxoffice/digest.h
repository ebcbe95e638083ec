// Digest: a deterministic 64-bit hash (FNV-1a over little-endian words).
//
// Used for request fingerprints (idempotency) and the engine's state hash;
// both must be equal across runs and machines, which std::hash and
// absl::Hash do not promise.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace boxoffice {

class Digest {
 public:
  void Mix(int64_t v) {
    auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) {
      h_ = (h_ ^ (u & 0xff)) * kPrime;
      u >>= 8;
    }
  }
  void Mix(absl::string_view s) {
    Mix(static_cast<int64_t>(s.size()));
    for (char c : s) h_ = (h_ ^ static_cast<uint8_t>(c)) * kPrime;
  }
  void operator()(int64_t v) { Mix(v); }
  uint64_t value() const { return h_; }

 private:
  static constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

}  // namespace boxoffice
