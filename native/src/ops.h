#pragma once
#include "convert.h"

namespace cz {
using OpFn = Napi::Value (*)(Args&);
struct OpEntry { const char* name; OpFn fn; };
// The bound ops; how to add one is at the top of ops.cc.
extern const OpEntry kOps[];
extern const size_t kNumOps;
}  // namespace cz
