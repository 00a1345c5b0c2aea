#pragma once
#include "convert.h"

namespace cz {
using OpFn = Napi::Value (*)(Args&);
struct OpEntry { const char* name; OpFn fn; };
// The bound ops. Adding an op is one entry in ops.cc's table (plus its TypeScript wrapper and test).
extern const OpEntry kOps[];
extern const size_t kNumOps;
}  // namespace cz
