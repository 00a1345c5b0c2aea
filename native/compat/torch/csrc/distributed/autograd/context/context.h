// Used only where the libtorch headers lack it (Debian's libtorch-dev ships c10d but not distributed
// autograd, which c10d/reducer.hpp includes). The Reducer needs just these two names: a pointer type
// for an RPC context that convzoo never sets, and the gradient callback's signature. A libtorch that
// has the real header finds it first (binding.gyp puts this folder last).
#pragma once
#include <ATen/ATen.h>
#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
