// The addon's exports: every op of the table wrapped in the one error funnel, plus handle
// management, memory statistics and the build/runtime version check.
#include <napi.h>
#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <torch/version.h>
#include "convert.h"
#include "ops.h"
#include "distributed.h"

namespace cz {
void install_allocator();
bool caching_allocator_enabled();
size_t allocator_cached_bytes();
void allocator_empty_cache();
void allocator_set_cache_limit(size_t bytes);

namespace {

// Set from TS so that native errors are ConvzooError instances; one per JS environment (worker threads
// load the addon again and have their own class).
Napi::FunctionReference* error_class(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }

// The kind of a c10::Error whose type does not settle it, from its text; `otherwise` when nothing matches.
const char* classify(const std::string& msg, const char* otherwise = "E_TORCH") {
  auto has = [&](const char* s) { return msg.find(s) != std::string::npos; };
  if (has("out of memory") || has("DefaultCPUAllocator: can't allocate") || has("bad_alloc")) return "E_OOM";
  if (has("dtype") || has("scalar type") || has("Scalar type") || has("ScalarType") || has("expected type") ||
      has("not implemented for '") || has("can't be cast to the desired output type")) return "E_DTYPE";
  if (has("shape") || has("size") || has("dimension") || has("dim ") || has("out of range") || has("channels") ||
      has("out of bounds") || has("must be a matrix") || has("Length of pad") || has("must match")) return "E_SHAPE";
  return otherwise;
}

// libtorch messages carry a C++ backtrace and "Exception raised from" lines after the message proper;
// the dispatcher's "Could not run ... backend." goes on for thousands of characters about builds and kernels.
std::string strip(const std::string& what) {
  std::string m = what;
  for (const char* cut : {"\nException raised from", "\nFrames", " (Triggered internally", " This could be because the operator"}) {
    auto p = m.find(cut);
    if (p != std::string::npos) m.resize(p);
  }
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

[[noreturn]] void throw_js(Napi::Env env, const char* op, const std::string& message, const char* code) {
  std::string full = std::string(op) + ": " + message;
  Napi::Object err;
  if (auto* cls = error_class(env); cls && !cls->IsEmpty()) {
    err = cls->New({Napi::String::New(env, full), Napi::String::New(env, code), Napi::String::New(env, op)});
  } else {
    err = Napi::Error::New(env, full).Value();
    err.Set("code", code);
  }
  throw Napi::Error(env, err);
}

// The one try/catch of the addon. libtorch states the kind of most errors by type (PyTorch maps the
// same types to Python's exceptions); the text is read only for c10::ValueError (shape or other argument?)
// and for a plain c10::Error (TORCH_CHECK), which says nothing by its type.
Napi::Value dispatch(const Napi::CallbackInfo& info) {
  auto* op = static_cast<const OpEntry*>(info.Data());
  Napi::Env env = info.Env();
  Args args(info);
  try {
    return op->fn(args);
  } catch (const Napi::Error&) {
    throw;
  } catch (const DisposedError& e) {  // from Args: a handle whose tensor was disposed
    throw_js(env, op->name, e.what(), "E_DISPOSED");
  } catch (const std::invalid_argument& e) {  // from Args: a JS value of the wrong kind
    throw_js(env, op->name, e.what(), "E_ARG");
  } catch (const dist::UnsupportedError& e) {  // a libtorch built without c10d
    throw_js(env, op->name, e.what(), "E_UNSUPPORTED");
  } catch (const c10::OutOfMemoryError& e) {  // our CPU allocator (allocator.cc), CUDA's
    throw_js(env, op->name, strip(e.what_without_backtrace()), "E_OOM");
  } catch (const c10::IndexError& e) {  // "Dimension out of range", "Target 9 is out of bounds"
    throw_js(env, op->name, strip(e.what_without_backtrace()), "E_SHAPE");
  } catch (const c10::TypeError& e) {  // "RNG state must be a torch.ByteTensor"
    throw_js(env, op->name, strip(e.what_without_backtrace()), "E_DTYPE");
  } catch (const c10::NotImplementedError& e) {  // 1.13: no kernel for the tensor's device ("Could not run ... 'Meta' backend")
    throw_js(env, op->name, strip(e.what_without_backtrace()), "E_ARG");
  } catch (const c10::ValueError& e) {  // a bad argument value, often a shape: "Expected input batch_size (3) to match ..."
    std::string m = strip(e.what_without_backtrace());
    throw_js(env, op->name, m, classify(m, "E_ARG"));
  } catch (const c10::Error& e) {
    std::string m = strip(e.what_without_backtrace());
    throw_js(env, op->name, m, classify(m));
  } catch (const std::bad_alloc&) {
    throw_js(env, op->name, "out of memory", "E_OOM");
  } catch (const std::exception& e) {
    std::string m = strip(e.what());
    throw_js(env, op->name, m, classify(m));
  }
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  info.Env().SetInstanceData(new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>())));
  return info.Env().Undefined();
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  dispose(info.Env(), info[0]);
  return info.Env().Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("tensors", Napi::Number::New(info.Env(), double(g_live_handles.load())));
  o.Set("bytes", Napi::Number::New(info.Env(), double(g_live_bytes.load())));
  o.Set("cachedBytes", Napi::Number::New(info.Env(), double(allocator_cached_bytes())));
  o.Set("cachingAllocator", Napi::Boolean::New(info.Env(), caching_allocator_enabled()));
  return o;
}

Napi::Value SetCacheLimit(const Napi::CallbackInfo& info) {
  double mb = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(mb >= 0 && mb <= 1048576) || mb != double(int64_t(mb))) throw_js(info.Env(), "setCacheLimit", "expected a whole number of MiB in [0, 1048576]", "E_ARG");
  allocator_set_cache_limit(size_t(mb) << 20);
  return info.Env().Undefined();
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  allocator_empty_cache();
  return info.Env().Undefined();
}

// The libtorch loaded at run time must be the one the addon was compiled against.
std::string check_runtime_version() {
  std::string built = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR);
  std::string config = at::show_config();
  auto p = config.find("TORCH_VERSION=");
  if (p == std::string::npos) return built;  // older builds do not print it; the soname pins the version
  std::string loaded = config.substr(p + 14, config.find_first_of(", \n", p + 14) - (p + 14));
  if (loaded.rfind(built + ".", 0) != 0 && loaded != built) {
    throw std::runtime_error("convzoo was built against libtorch " + built + " but loaded libtorch " + loaded +
                             "; rebuild it (npm rebuild convzoo) against the libtorch you use");
  }
  return loaded;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  install_allocator();
  std::string version;
  try {
    version = check_runtime_version();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  auto ops = Napi::Object::New(env);
  for (size_t i = 0; i < kNumOps; i++) {
    // A second entry of the same name would silently replace the first.
    if (ops.Has(kOps[i].name)) throw Napi::Error::New(env, std::string("convzoo: op '") + kOps[i].name + "' is in the op table twice");
    ops.Set(kOps[i].name, Napi::Function::New(env, dispatch, kOps[i].name, const_cast<OpEntry*>(&kOps[i])));
  }
  exports.Set("ops", ops);
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("memory", Napi::Function::New(env, Memory));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache));
  exports.Set("setCacheLimit", Napi::Function::New(env, SetCacheLimit));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
  exports.Set("torchVersion", Napi::String::New(env, version));
  exports.Set("config", Napi::String::New(env, at::show_config()));
  return exports;
}

}  // namespace cz

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return cz::Init(env, exports); }
NODE_API_MODULE(convzoo, InitAddon)
