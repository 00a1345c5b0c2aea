// Test-only addon: JavaScript cannot make an External itself, so test/native.test.ts gets foreign ones
// here to check that convzoo refuses them as tensor handles instead of dereferencing them.
#include <node_api.h>

namespace {

// Never dereferenced: if convzoo took one of these for a tensor, the test process would crash.
void* const kBogus = reinterpret_cast<void*>(0x10);

napi_value Untagged(napi_env env, napi_callback_info) {
  napi_value ext;
  napi_create_external(env, kBogus, nullptr, nullptr, &ext);
  return ext;
}

// Tagged as another addon's object would be: a type tag that is not convzoo's.
napi_value OtherTag(napi_env env, napi_callback_info) {
  static const napi_type_tag kOther = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  napi_value ext;
  napi_create_external(env, kBogus, nullptr, nullptr, &ext);
  napi_type_tag_object(env, ext, &kOther);
  return ext;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"untagged", nullptr, Untagged, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"otherTag", nullptr, OtherTag, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
