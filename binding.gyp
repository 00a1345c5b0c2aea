{
  "targets": [{
    "target_name": "convzoo",
    "sources": [
      "native/src/addon.cc",
      "native/src/convert.cc",
      "native/src/ops.cc",
      "native/src/allocator.cc",
      "native/src/distributed.cc"
    ],
    "include_dirs": [
      "<!@(node -p \"require('node-addon-api').include_dir\")",
      "<!@(node scripts/find-libtorch.mjs include)",
      "native/compat"
    ],
    "defines": ["NAPI_EXPERIMENTAL", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations", "<!@(node scripts/find-libtorch.mjs abi)", "<!@(node scripts/find-libtorch.mjs c10d)"],
    "libraries": [
      "-L<!@(node scripts/find-libtorch.mjs libdir)",
      "-Wl,-rpath,<!@(node scripts/find-libtorch.mjs libdir)",
      "-Wl,--no-as-needed", "-ltorch_cpu", "-ltorch", "-lc10", "-Wl,--as-needed"
    ]
  }, {
    "target_name": "forge_externals",
    "sources": ["native/test/forge_externals.cc"]
  }]
}
