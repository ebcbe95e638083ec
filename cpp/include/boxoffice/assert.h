// BOXOFFICE_ASSERT: invariant checks that stay on in every build.
//
// Expected failures are absl::Status return values; a failed assertion means
// the engine's own state is wrong, so it stops the process at once with the
// condition and location rather than run on and corrupt money or seats
// (TigerBeetle's rule: assertions are a force multiplier for finding bugs).
#pragma once

#include <cstdio>
#include <cstdlib>

#define BOXOFFICE_ASSERT(cond)                                                  \
  do {                                                                          \
    if (!(cond)) [[unlikely]] {                                                 \
      std::fprintf(stderr, "boxoffice: assertion failed: %s at %s:%d\n", #cond, \
                   __FILE__, __LINE__);                                         \
      std::abort();                                                             \
    }                                                                           \
  } while (false)
