// JS <-> C++ conversions for the op table: tensor handles, shapes, scalars, dtypes.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

namespace cz {

// Live tensor handles, for cz.memory() and leak tests.
extern std::atomic<int64_t> g_live_handles;
extern std::atomic<int64_t> g_live_bytes;  // storage bytes referenced by live handles (a view counts its storage)

// A handle is a JS External owning one heap at::Tensor reference; dispose() drops the reference,
// the GC finalizer frees the box (and the reference if dispose was never called).
struct DisposedError : std::invalid_argument { using std::invalid_argument::invalid_argument; };

struct Box {
  at::Tensor tensor;
  int64_t accounted = 0;  // bytes reported to V8 as external memory
  int64_t bytes = 0;      // counted in g_live_bytes
};

Napi::Value wrap(Napi::Env env, at::Tensor t);
// A value that is not one of our handles (a plain object, a number, a foreign or untagged External)
// raises std::invalid_argument; a disposed handle raises DisposedError.
at::Tensor& unwrap(Napi::Env env, const Napi::Value& v, const char* what);
void dispose(Napi::Env env, const Napi::Value& v);

at::ScalarType parse_dtype(const std::string& name);
const char* dtype_name(at::ScalarType t);

// Positional arguments of one op call, with typed accessors that raise std::invalid_argument (E_ARG)
// naming the argument. Integer accessors accept only whole numbers a double holds exactly (and
// BigInts that fit int64): 2.5, NaN, Infinity or 2**60 are refused, never truncated.
struct Args {
  const Napi::CallbackInfo& info;
  Napi::Env env;
  explicit Args(const Napi::CallbackInfo& i) : info(i), env(i.Env()) {}
  size_t size() const { return info.Length(); }
  bool has(size_t i) const { return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull(); }
  at::Tensor& t(size_t i) const;
  c10::optional<at::Tensor> opt_t(size_t i) const;
  int64_t i64(size_t i) const;
  int64_t i64_or(size_t i, int64_t d) const { return has(i) ? i64(i) : d; }
  double f64(size_t i) const;
  double f64_or(size_t i, double d) const { return has(i) ? f64(i) : d; }
  bool b(size_t i) const;
  bool b_or(size_t i, bool d) const { return has(i) ? b(i) : d; }
  std::vector<int64_t> ints(size_t i) const;
  c10::optional<int64_t> opt_i64(size_t i) const { return has(i) ? c10::optional<int64_t>(i64(i)) : c10::nullopt; }
  at::Scalar scalar(size_t i) const;
  bool is_tensor(size_t i) const;
  std::string str(size_t i) const;
  at::ScalarType dtype(size_t i) const { return parse_dtype(str(i)); }
  std::vector<at::Tensor> tensors(size_t i) const;
};

Napi::Value ret(Napi::Env env, const at::Tensor& t);
Napi::Value ret(Napi::Env env, const std::vector<at::Tensor>& ts);
Napi::Value ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts);
Napi::Value ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor, at::Tensor>& ts);

}  // namespace cz
