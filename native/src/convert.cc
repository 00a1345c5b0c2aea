#include "convert.h"
#include <cmath>
#include <stdexcept>

namespace cz {

std::atomic<int64_t> g_live_handles{0};
std::atomic<int64_t> g_live_bytes{0};

// Tags the Externals we make, so a foreign object passed as a tensor is refused instead of crashing.
static const napi_type_tag kTensorTag = {0x636f6e767a6f6f31ULL, 0x74656e736f727631ULL};

// What a wrong value was, for messages: numbers as JS prints them ("2.5", "NaN"), otherwise the kind.
static std::string describe(const Napi::Value& v) {
  if (v.IsNumber() || v.IsBigInt() || v.IsBoolean()) return v.ToString().Utf8Value();
  if (v.IsString()) return "a string";
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsArray()) return "an array";
  if (v.IsExternal()) return "an External (a handle)";
  return v.IsFunction() ? "a function" : "an object";
}

// The largest integer a double, and so a JS number, holds exactly (Number.MAX_SAFE_INTEGER).
constexpr double kMaxSafeInteger = 9007199254740991.0;

static int64_t storage_bytes(const at::Tensor& t) {
  return t.defined() && t.has_storage() ? static_cast<int64_t>(t.storage().nbytes()) : 0;
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  Box* box = new Box{std::move(t)};
  // Report a share of the memory so that V8's GC, the safety net for forgotten tensors, feels it.
  // The finalizer is a "pure" one (BasicEnv): it runs during GC itself, so memory of forgotten handles
  // comes back even in a loop that never yields to the event loop.
  box->bytes = storage_bytes(box->tensor);
  g_live_bytes += box->bytes;
  // A sixteenth, at most 4 MiB: enough for forgotten handles to trigger collections, little enough that
  // V8 does not run a full GC several times per batch-16 forward (measured: up to 11% of a forward).
  box->accounted = std::min<int64_t>(box->bytes / 16, 4 << 20);
  if (box->accounted) Napi::MemoryManagement::AdjustExternalMemory(env, box->accounted);
  g_live_handles++;
  auto ext = Napi::External<Box>::New(env, box, [](Napi::BasicEnv env, Box* b) {
    if (b->tensor.defined()) { g_live_handles--; g_live_bytes -= b->bytes; }
    if (b->accounted) Napi::MemoryManagement::AdjustExternalMemory(env, -b->accounted);
    delete b;
  });
  napi_type_tag_object(env, ext, &kTensorTag);
  return ext;
}

static Box* box_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  bool ok = false;
  napi_check_object_type_tag(env, v, &kTensorTag, &ok);
  return ok ? v.As<Napi::External<Box>>().Data() : nullptr;
}

at::Tensor& unwrap(Napi::Env env, const Napi::Value& v, const char* what) {
  Box* b = box_of(env, v);
  if (!b) throw std::invalid_argument(std::string("expected ") + what + " to be a tensor handle, got " + describe(v));
  if (!b->tensor.defined()) throw DisposedError(std::string(what) + " is a disposed tensor");
  return b->tensor;
}

void dispose(Napi::Env env, const Napi::Value& v) {
  Box* b = box_of(env, v);
  if (!b || !b->tensor.defined()) return;
  b->tensor = at::Tensor();
  g_live_handles--;
  g_live_bytes -= b->bytes;
  if (b->accounted) Napi::MemoryManagement::AdjustExternalMemory(env, -b->accounted);
  b->accounted = 0;
}

static const std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
    {"uint8", at::kByte},    {"bool", at::kBool},
};

at::ScalarType parse_dtype(const std::string& name) {
  for (auto& [n, t] : kDtypes) if (name == n) return t;
  throw std::invalid_argument("unknown dtype '" + name + "'");
}

const char* dtype_name(at::ScalarType t) {
  for (auto& [n, s] : kDtypes) if (s == t) return n;
  return "unsupported";
}

static std::string where(size_t i) { return "argument " + std::to_string(i); }

static int64_t to_int64(const Napi::Value& v, const std::string& what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw std::invalid_argument("expected " + what + " to fit in int64, got " + describe(v));
    return x;
  }
  if (!v.IsNumber()) throw std::invalid_argument("expected " + what + " to be an integer, got " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  // !(a <= b) is also true for NaN.
  if (!(std::abs(d) <= kMaxSafeInteger) || d != std::trunc(d)) {
    throw std::invalid_argument("expected " + what + " to be an integer (a whole number within +-2^53), got " + describe(v));
  }
  return static_cast<int64_t>(d);
}

at::Tensor& Args::t(size_t i) const {
  if (i >= info.Length()) throw std::invalid_argument("missing " + where(i) + " (tensor)");
  return unwrap(env, info[i], where(i).c_str());
}

c10::optional<at::Tensor> Args::opt_t(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return t(i);
}

bool Args::is_tensor(size_t i) const { return i < info.Length() && info[i].IsExternal(); }

int64_t Args::i64(size_t i) const {
  if (i >= info.Length()) throw std::invalid_argument("missing " + where(i) + " (integer)");
  return to_int64(info[i], where(i));
}

double Args::f64(size_t i) const {
  if (i >= info.Length() || !info[i].IsNumber()) throw std::invalid_argument("expected " + where(i) + " to be a number, got " + describe(info[i]));
  return info[i].As<Napi::Number>().DoubleValue();
}

bool Args::b(size_t i) const {
  if (i >= info.Length() || !info[i].IsBoolean()) throw std::invalid_argument("expected " + where(i) + " to be a boolean, got " + describe(info[i]));
  return info[i].As<Napi::Boolean>().Value();
}

std::vector<int64_t> Args::ints(size_t i) const {
  if (i >= info.Length()) throw std::invalid_argument("missing " + where(i) + " (integer list)");
  if (info[i].IsNumber() || info[i].IsBigInt()) return {to_int64(info[i], where(i))};
  if (!info[i].IsArray()) throw std::invalid_argument("expected " + where(i) + " to be an integer list, got " + describe(info[i]));
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = to_int64(arr.Get(k), where(i) + "[" + std::to_string(k) + "]");
  return out;
}

at::Scalar Args::scalar(size_t i) const {
  if (i >= info.Length()) throw std::invalid_argument("missing " + where(i) + " (scalar)");
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  if (info[i].IsBigInt()) return at::Scalar(to_int64(info[i], where(i)));
  if (!info[i].IsNumber()) throw std::invalid_argument("expected " + where(i) + " to be a number, got " + describe(info[i]));
  double d = info[i].As<Napi::Number>().DoubleValue();
  // Integral JS numbers become integer scalars so that int tensors keep their dtype, as in Python.
  if (d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.007199254740992e15) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

std::string Args::str(size_t i) const {
  if (i >= info.Length() || !info[i].IsString()) throw std::invalid_argument("expected " + where(i) + " to be a string, got " + describe(info[i]));
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<at::Tensor> Args::tensors(size_t i) const {
  if (i >= info.Length() || !info[i].IsArray()) throw std::invalid_argument("expected " + where(i) + " to be a tensor list");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out.push_back(unwrap(env, arr.Get(k), (where(i) + "[" + std::to_string(k) + "]").c_str()));
  return out;
}

Napi::Value ret(Napi::Env env, const at::Tensor& t) { return wrap(env, t); }

Napi::Value ret(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (uint32_t k = 0; k < ts.size(); k++) arr.Set(k, wrap(env, ts[k]));
  return arr;
}

Napi::Value ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& ts) {
  return ret(env, std::vector<at::Tensor>{std::get<0>(ts), std::get<1>(ts)});
}

Napi::Value ret(Napi::Env env, const std::tuple<at::Tensor, at::Tensor, at::Tensor>& ts) {
  return ret(env, std::vector<at::Tensor>{std::get<0>(ts), std::get<1>(ts), std::get<2>(ts)});
}

}  // namespace cz
