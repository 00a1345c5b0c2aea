// The op table: one entry per bound libtorch function. Arguments arrive positionally and Args converts
// each one strictly (a wrong kind of value is E_ARG); libtorch validates shapes and dtypes, and every
// exception reaches JS as a ConvzooError through addon.cc's dispatch.
//
// Adding an op:
//   1. One entry in kOps below, e.g.
//        OP(tril) { return ret(E, at::tril(a.t(0), a.i64_or(1, 0))); } END,
//      or UNARY(name) / BINARY(name) for the common shapes. Use the Args accessors (t, opt_t, i64, ints,
//      f64, b, str, scalar, dtype, tensors), never raw info[i] conversions.
//   2. One line in the NativeOps interface in src/native_ops.ts, with its parameter and return types:
//        tril(x: Handle, diagonal?: number): Handle;
//   3. A caller (a Tensor method or an F function) and its test; test/native.test.ts fails while an op
//      is in one list and not the other, and tsc fails on a misspelt op or a wrong argument list.
#include "ops.h"
#include "distributed.h"
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/irange.h>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace cz {
namespace {

using at::Tensor;
#define E a.env
#define OP(name) {#name, [](Args& a) -> Napi::Value
#define END }

at::TensorOptions opts(Args& a, size_t dtype_index) {
  at::TensorOptions o;
  if (a.has(dtype_index)) o = o.dtype(a.dtype(dtype_index));
  if (a.has(dtype_index + 1)) o = o.device(at::Device(a.str(dtype_index + 1)));
  return o;
}

Tensor with_grad(Tensor t, Args& a, size_t i) {
  if (a.b_or(i, false)) t.set_requires_grad(true);
  return t;
}

// Binary ops take a tensor or a number as their second operand.
#define BINARY(name) OP(name) { return a.is_tensor(1) ? ret(E, at::name(a.t(0), a.t(1))) : ret(E, at::name(a.t(0), a.scalar(1))); } END
#define BINARY_(name) OP(name) { return a.is_tensor(1) ? (a.t(0).name(a.t(1)), a.info[0]) : (a.t(0).name(a.scalar(1)), a.info[0]); } END
#define UNARY(name) OP(name) { return ret(E, at::name(a.t(0))); } END
#define UNARY_(name) OP(name) { a.t(0).name(); return a.info[0]; } END

thread_local std::vector<std::unique_ptr<c10::InferenceMode>> g_inference_guards;  // InferenceMode is per thread

// Tensors between share() and adopt(). Ids are counters, not addresses, so a forged, stale or repeated
// id is refused instead of dereferenced. One table for the process: the two sides are different threads.
std::mutex g_parked_mutex;
std::unordered_map<uint64_t, Tensor> g_parked;
uint64_t g_next_parked_id = 1;

uint64_t park(const Tensor& t) {
  std::lock_guard<std::mutex> lock(g_parked_mutex);
  g_parked.emplace(g_next_parked_id, t);
  return g_next_parked_id++;
}

Tensor unpark(uint64_t id) {
  std::lock_guard<std::mutex> lock(g_parked_mutex);
  auto it = g_parked.find(id);
  if (it == g_parked.end()) throw std::invalid_argument("no shared tensor has id " + std::to_string(id) + " (each id from share() is adopted once)");
  Tensor t = std::move(it->second);
  g_parked.erase(it);
  return t;
}

// An optional memory-format argument: 'contiguous' (the default) or 'channels_last' (NHWC strides).
at::MemoryFormat memory_format(Args& a, size_t i) {
  if (!a.has(i)) return at::MemoryFormat::Contiguous;
  std::string f = a.str(i);
  if (f == "contiguous") return at::MemoryFormat::Contiguous;
  if (f == "channels_last") return at::MemoryFormat::ChannelsLast;
  throw std::invalid_argument("unknown memory format '" + f + "' (expected contiguous or channels_last)");
}

bool autocast_device(Args& a) {
  std::string d = a.str(0);
  if (d != "cpu" && d != "cuda") throw std::invalid_argument("autocast: device must be 'cpu' or 'cuda', got '" + d + "'");
  return d == "cuda";
}

int64_t reduction(Args& a, size_t i) {
  if (!a.has(i)) return at::Reduction::Mean;
  std::string r = a.str(i);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw std::invalid_argument("unknown reduction '" + r + "' (expected mean, sum or none)");
}

at::OptionalIntArrayRef opt_dims(Args& a, size_t i, std::vector<int64_t>& store) {
  if (!a.has(i)) return c10::nullopt;
  store = a.ints(i);
  return at::IntArrayRef(store);
}

}  // namespace

const OpEntry kOps[] = {
    // ---- creation
    OP(empty) { return ret(E, with_grad(at::empty(a.ints(0), opts(a, 1)), a, 3)); } END,
    OP(zeros) { return ret(E, with_grad(at::zeros(a.ints(0), opts(a, 1)), a, 3)); } END,
    OP(ones) { return ret(E, with_grad(at::ones(a.ints(0), opts(a, 1)), a, 3)); } END,
    OP(full) { return ret(E, with_grad(at::full(a.ints(0), a.scalar(1), opts(a, 2)), a, 4)); } END,
    OP(rand) { return ret(E, with_grad(at::rand(a.ints(0), opts(a, 1)), a, 3)); } END,
    OP(randn) { return ret(E, with_grad(at::randn(a.ints(0), opts(a, 1)), a, 3)); } END,
    OP(randint) { return ret(E, at::randint(a.i64(0), a.i64(1), a.ints(2), opts(a, 3))); } END,
    OP(randperm) { return ret(E, at::randperm(a.i64(0), opts(a, 1))); } END,
    OP(arange) { return ret(E, at::arange(a.scalar(0), a.scalar(1), a.scalar(2), opts(a, 3))); } END,
    OP(eye) { return ret(E, at::eye(a.i64(0), opts(a, 1))); } END,
    OP(zeros_like) { return ret(E, at::zeros_like(a.t(0))); } END,
    OP(ones_like) { return ret(E, at::ones_like(a.t(0))); } END,
    OP(empty_like) { return ret(E, at::empty_like(a.t(0))); } END,
    OP(full_like) { return ret(E, at::full_like(a.t(0), a.scalar(1))); } END,
    OP(scalar_tensor) { return ret(E, at::scalar_tensor(a.scalar(0), opts(a, 1))); } END,

    // ---- conversion and layout
    OP(to_dtype) { return ret(E, a.t(0).to(a.dtype(1))); } END,
    OP(to_device) { return ret(E, a.t(0).to(at::Device(a.str(1)))); } END,
    UNARY(clone), OP(contiguous) { return ret(E, a.t(0).contiguous(memory_format(a, 1))); } END,
    OP(detach) { return ret(E, a.t(0).detach()); } END,
    OP(view) { return ret(E, a.t(0).view(a.ints(1))); } END,
    OP(reshape) { return ret(E, a.t(0).reshape(a.ints(1))); } END,
    OP(permute) { return ret(E, a.t(0).permute(a.ints(1))); } END,
    OP(transpose) { return ret(E, a.t(0).transpose(a.i64(1), a.i64(2))); } END,
    OP(flatten) { return ret(E, a.t(0).flatten(a.i64_or(1, 0), a.i64_or(2, -1))); } END,
    OP(narrow) { return ret(E, a.t(0).narrow(a.i64(1), a.i64(2), a.i64(3))); } END,
    OP(select) { return ret(E, a.t(0).select(a.i64(1), a.i64(2))); } END,
    OP(slice) { return ret(E, a.t(0).slice(a.i64(1), a.opt_i64(2), a.opt_i64(3), a.i64_or(4, 1))); } END,
    OP(index_select) { return ret(E, a.t(0).index_select(a.i64(1), a.t(2))); } END,
    OP(index_tensor) { return ret(E, at::index(a.t(0), {c10::optional<Tensor>(a.t(1))})); } END,
    OP(gather) { return ret(E, a.t(0).gather(a.i64(1), a.t(2))); } END,
    OP(scatter) { return ret(E, a.t(0).scatter(a.i64(1), a.t(2), a.t(3))); } END,
    OP(unsqueeze) { return ret(E, a.t(0).unsqueeze(a.i64(1))); } END,
    OP(squeeze) { return a.has(1) ? ret(E, a.t(0).squeeze(a.i64(1))) : ret(E, a.t(0).squeeze()); } END,
    OP(expand) { return ret(E, a.t(0).expand(a.ints(1))); } END,
    OP(repeat) { return ret(E, a.t(0).repeat(a.ints(1))); } END,
    OP(flip) { return ret(E, a.t(0).flip(a.ints(1))); } END,
    OP(roll) { return ret(E, a.t(0).roll(a.ints(1), a.ints(2))); } END,
    OP(as_strided) { return ret(E, a.t(0).as_strided(a.ints(1), a.ints(2), a.i64(3))); } END,
    OP(cat) { return ret(E, at::cat(a.tensors(0), a.i64_or(1, 0))); } END,
    OP(stack) { return ret(E, at::stack(a.tensors(0), a.i64_or(1, 0))); } END,
    OP(split) { return a.info[1].IsArray() ? ret(E, at::split_with_sizes(a.t(0), a.ints(1), a.i64(2))) : ret(E, at::split(a.t(0), a.i64(1), a.i64(2))); } END,
    OP(chunk) { return ret(E, at::chunk(a.t(0), a.i64(1), a.i64(2))); } END,
    OP(where) { return ret(E, a.is_tensor(2) ? at::where(a.t(0), a.t(1), a.t(2)) : at::where(a.t(0), a.t(1), a.scalar(2))); } END,
    OP(masked_fill) { return ret(E, a.t(0).masked_fill(a.t(1), a.scalar(2))); } END,
    OP(one_hot) { return ret(E, at::one_hot(a.t(0), a.i64_or(1, -1))); } END,

    // ---- elementwise
    BINARY(add), BINARY(sub), BINARY(mul), BINARY(div), BINARY(pow), BINARY(remainder), BINARY(eq), BINARY(ne),
    BINARY(lt), BINARY(le), BINARY(gt), BINARY(ge),
    OP(add_scaled) { return ret(E, at::add(a.t(0), a.t(1), a.scalar(2))); } END,
    OP(maximum) { return ret(E, at::maximum(a.t(0), a.t(1))); } END,
    OP(minimum) { return ret(E, at::minimum(a.t(0), a.t(1))); } END,
    OP(clamp) { return ret(E, at::clamp(a.t(0), a.has(1) ? c10::optional<at::Scalar>(a.scalar(1)) : c10::nullopt, a.has(2) ? c10::optional<at::Scalar>(a.scalar(2)) : c10::nullopt)); } END,
    OP(logical_and) { return ret(E, at::logical_and(a.t(0), a.t(1))); } END,
    OP(logical_or) { return ret(E, at::logical_or(a.t(0), a.t(1))); } END,
    UNARY(neg), UNARY(abs), UNARY(exp), UNARY(log), UNARY(sqrt), UNARY(rsqrt), UNARY(reciprocal), UNARY(sign),
    UNARY(floor), UNARY(ceil), UNARY(round), UNARY(sin), UNARY(cos), UNARY(erf), UNARY(erfinv), UNARY(square),
    UNARY(logical_not), UNARY(isfinite), UNARY(isnan), UNARY(log1p),
    UNARY(relu), UNARY(sigmoid), UNARY(tanh), UNARY(silu), UNARY(hardswish), UNARY(hardsigmoid), UNARY(mish),

    // ---- in place (return the same handle)
    BINARY_(add_), BINARY_(sub_), BINARY_(mul_), BINARY_(div_),
    OP(add_scaled_) { a.t(0).add_(a.t(1), a.scalar(2)); return a.info[0]; } END,
    OP(copy_) { a.t(0).copy_(a.t(1)); return a.info[0]; } END,
    // In-place activations after a norm (MobileNetV3, as torchvision's inplace=True): no extra activation buffer.
    OP(hardswish_) { auto t = a.t(0); at::hardswish_(t); return a.info[0]; } END,
    OP(hardsigmoid_) { auto t = a.t(0); at::hardsigmoid_(t); return a.info[0]; } END,
    OP(relu6_) { auto t = a.t(0); at::hardtanh_(t, 0, 6); return a.info[0]; } END,
    OP(threshold_) { auto t = a.t(0); at::threshold_(t, a.scalar(1), a.scalar(2)); return a.info[0]; } END,
    OP(fill_) { a.t(0).fill_(a.scalar(1)); return a.info[0]; } END,
    UNARY_(zero_), UNARY_(relu_), UNARY_(sqrt_), UNARY_(erfinv_), UNARY_(sigmoid_), UNARY_(neg_), UNARY_(exp_),
    OP(clamp_) { a.t(0).clamp_(a.has(1) ? c10::optional<at::Scalar>(a.scalar(1)) : c10::nullopt, a.has(2) ? c10::optional<at::Scalar>(a.scalar(2)) : c10::nullopt); return a.info[0]; } END,
    OP(addcmul_) { a.t(0).addcmul_(a.t(1), a.t(2), a.scalar(3)); return a.info[0]; } END,
    OP(addcdiv_) { a.t(0).addcdiv_(a.t(1), a.t(2), a.scalar(3)); return a.info[0]; } END,
    OP(lerp_) { a.t(0).lerp_(a.t(1), a.scalar(2)); return a.info[0]; } END,
    OP(normal_) { a.t(0).normal_(a.f64(1), a.f64(2)); return a.info[0]; } END,
    OP(uniform_) { a.t(0).uniform_(a.f64(1), a.f64(2)); return a.info[0]; } END,
    OP(bernoulli_) { a.t(0).bernoulli_(a.f64(1)); return a.info[0]; } END,
    OP(masked_fill_) { a.t(0).masked_fill_(a.t(1), a.scalar(2)); return a.info[0]; } END,
    OP(maximum_) { at::maximum_out(a.t(0), a.t(0), a.t(1)); return a.info[0]; } END,

    // ---- reductions
    OP(sum) { std::vector<int64_t> d; return a.has(1) ? ret(E, at::sum(a.t(0), opt_dims(a, 1, d), a.b_or(2, false))) : ret(E, at::sum(a.t(0))); } END,
    OP(mean) { std::vector<int64_t> d; return a.has(1) ? ret(E, at::mean(a.t(0), opt_dims(a, 1, d), a.b_or(2, false))) : ret(E, at::mean(a.t(0))); } END,
    OP(amax) { return ret(E, at::amax(a.t(0), a.has(1) ? a.ints(1) : std::vector<int64_t>{}, a.b_or(2, false))); } END,
    OP(amin) { return ret(E, at::amin(a.t(0), a.has(1) ? a.ints(1) : std::vector<int64_t>{}, a.b_or(2, false))); } END,
    OP(prod) { return a.has(1) ? ret(E, at::prod(a.t(0), a.i64(1), a.b_or(2, false))) : ret(E, at::prod(a.t(0))); } END,
    OP(var) { std::vector<int64_t> d; return ret(E, at::var(a.t(0), opt_dims(a, 1, d), a.i64_or(2, 1), a.b_or(3, false))); } END,
    OP(std) { std::vector<int64_t> d; return ret(E, at::std(a.t(0), opt_dims(a, 1, d), a.i64_or(2, 1), a.b_or(3, false))); } END,
    OP(norm) { std::vector<int64_t> d; return a.has(2) ? ret(E, at::norm(a.t(0), a.scalar(1), a.ints(2), a.b_or(3, false))) : ret(E, at::norm(a.t(0), a.scalar(1))); } END,
    OP(logsumexp) { return ret(E, at::logsumexp(a.t(0), a.ints(1), a.b_or(2, false))); } END,
    OP(cumsum) { return ret(E, at::cumsum(a.t(0), a.i64(1))); } END,
    OP(max_dim) { return ret(E, at::max(a.t(0), a.i64(1), a.b_or(2, false))); } END,
    OP(min_dim) { return ret(E, at::min(a.t(0), a.i64(1), a.b_or(2, false))); } END,
    UNARY(max), UNARY(min), UNARY(all), UNARY(any),
    OP(argmax) { return ret(E, at::argmax(a.t(0), a.opt_i64(1), a.b_or(2, false))); } END,
    OP(argmin) { return ret(E, at::argmin(a.t(0), a.opt_i64(1), a.b_or(2, false))); } END,
    OP(topk) { return ret(E, at::topk(a.t(0), a.i64(1), a.i64_or(2, -1), a.b_or(3, true), a.b_or(4, true))); } END,
    OP(sort) { return ret(E, at::sort(a.t(0), a.i64_or(1, -1), a.b_or(2, false))); } END,

    // ---- linear algebra
    OP(matmul) { return ret(E, at::matmul(a.t(0), a.t(1))); } END,
    OP(mm) { return ret(E, at::mm(a.t(0), a.t(1))); } END,
    OP(bmm) { return ret(E, at::bmm(a.t(0), a.t(1))); } END,

    // ---- neural network functions
    OP(conv2d) {
      if (a.info[4].IsString()) return ret(E, at::conv2d(a.t(0), a.t(1), a.opt_t(2), a.ints(3), a.str(4), a.ints(5), a.i64(6)));
      return ret(E, at::conv2d(a.t(0), a.t(1), a.opt_t(2), a.ints(3), a.ints(4), a.ints(5), a.i64(6)));
    } END,
    OP(linear) { return ret(E, at::linear(a.t(0), a.t(1), a.opt_t(2))); } END,
    OP(max_pool2d) { return ret(E, at::max_pool2d(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.ints(4), a.b(5))); } END,
    OP(max_pool2d_with_indices) { return ret(E, at::max_pool2d_with_indices(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.ints(4), a.b(5))); } END,
    OP(avg_pool2d) { return ret(E, at::avg_pool2d(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.b(4), a.b(5), a.opt_i64(6))); } END,
    OP(avg_pool3d) { return ret(E, at::avg_pool3d(a.t(0), a.ints(1), a.ints(2), a.ints(3), a.b(4), a.b(5), a.opt_i64(6))); } END,
    OP(adaptive_avg_pool2d) { return ret(E, at::adaptive_avg_pool2d(a.t(0), a.ints(1))); } END,
    OP(adaptive_max_pool2d) { return ret(E, at::adaptive_max_pool2d(a.t(0), a.ints(1))); } END,
    OP(batch_norm) { return ret(E, at::batch_norm(a.t(0), a.opt_t(1), a.opt_t(2), a.opt_t(3), a.opt_t(4), a.b(5), a.f64(6), a.f64(7), true)); } END,
    OP(layer_norm) { return ret(E, at::layer_norm(a.t(0), a.ints(1), a.opt_t(2), a.opt_t(3), a.f64(4))); } END,
    OP(group_norm) { return ret(E, at::group_norm(a.t(0), a.i64(1), a.opt_t(2), a.opt_t(3), a.f64(4))); } END,
    OP(dropout) { return ret(E, at::dropout(a.t(0), a.f64(1), a.b(2))); } END,
    OP(feature_dropout) { return ret(E, at::feature_dropout(a.t(0), a.f64(1), a.b(2))); } END,
    OP(hardtanh) { return ret(E, at::hardtanh(a.t(0), a.scalar(1), a.scalar(2))); } END,
    OP(threshold) { return ret(E, at::threshold(a.t(0), a.scalar(1), a.scalar(2))); } END,
    OP(leaky_relu) { return ret(E, at::leaky_relu(a.t(0), a.scalar(1))); } END,
    OP(elu) { return ret(E, at::elu(a.t(0), a.scalar(1))); } END,
    OP(gelu) { return ret(E, at::gelu(a.t(0), a.has(1) ? a.str(1) : "none")); } END,
    OP(softplus) { return ret(E, at::softplus(a.t(0), a.scalar(1), a.scalar(2))); } END,
    OP(softmax) { return ret(E, at::softmax(a.t(0), a.i64(1))); } END,
    OP(log_softmax) { return ret(E, at::log_softmax(a.t(0), a.i64(1))); } END,
    OP(cross_entropy) { return ret(E, at::cross_entropy_loss(a.t(0), a.t(1), a.opt_t(2), reduction(a, 3), a.i64_or(4, -100), a.f64_or(5, 0.0))); } END,
    OP(nll_loss) { return ret(E, at::nll_loss_nd(a.t(0), a.t(1), a.opt_t(2), reduction(a, 3), a.i64_or(4, -100))); } END,
    OP(mse_loss) { return ret(E, at::mse_loss(a.t(0), a.t(1), reduction(a, 2))); } END,
    OP(bce_with_logits) { return ret(E, at::binary_cross_entropy_with_logits(a.t(0), a.t(1), a.opt_t(2), c10::nullopt, reduction(a, 3))); } END,
    OP(constant_pad_nd) { return ret(E, at::constant_pad_nd(a.t(0), a.ints(1), a.scalar(2))); } END,
    OP(reflection_pad2d) { return ret(E, at::reflection_pad2d(a.t(0), a.ints(1))); } END,
    OP(replication_pad2d) { return ret(E, at::replication_pad2d(a.t(0), a.ints(1))); } END,
    // Optional scales (h, w) as torch's interpolate(scale_factor=...) passes them: the kernels then map
    // output to input coordinates with 1/scale instead of inSize/outSize.
    OP(upsample_nearest2d) { return ret(E, at::upsample_nearest2d(a.t(0), a.ints(1), a.has(2) ? c10::optional<double>(a.f64(2)) : c10::nullopt, a.has(3) ? c10::optional<double>(a.f64(3)) : c10::nullopt)); } END,
    OP(upsample_bilinear2d) { return ret(E, at::upsample_bilinear2d(a.t(0), a.ints(1), a.b(2), a.has(3) ? c10::optional<double>(a.f64(3)) : c10::nullopt, a.has(4) ? c10::optional<double>(a.f64(4)) : c10::nullopt)); } END,

    // ---- autograd
    OP(backward) { a.t(0).backward(a.opt_t(1).value_or(Tensor()), a.b_or(2, false)); return E.Undefined(); } END,
    OP(grad) { const Tensor& g = a.t(0).grad(); return g.defined() ? ret(E, g) : E.Null(); } END,
    OP(set_grad) { a.t(0).mutable_grad() = a.has(1) ? a.t(1) : Tensor(); return E.Undefined(); } END,
    OP(requires_grad) { return Napi::Boolean::New(E, a.t(0).requires_grad()); } END,
    OP(set_requires_grad) { a.t(0).set_requires_grad(a.b(1)); return E.Undefined(); } END,
    OP(is_leaf) { return Napi::Boolean::New(E, a.t(0).is_leaf()); } END,
    OP(set_grad_enabled) { bool prev = at::GradMode::is_enabled(); at::GradMode::set_enabled(a.b(0)); return Napi::Boolean::New(E, prev); } END,
    OP(is_grad_enabled) { return Napi::Boolean::New(E, at::GradMode::is_enabled()); } END,
    OP(enter_inference_mode) { g_inference_guards.push_back(std::make_unique<c10::InferenceMode>()); return E.Undefined(); } END,
    OP(exit_inference_mode) { if (!g_inference_guards.empty()) g_inference_guards.pop_back(); return E.Undefined(); } END,
    // Automatic mixed precision on this thread, as torch.autocast's __enter__ and __exit__:
    // autocast_enter(device 'cpu'|'cuda', enabled, dtype) -> [was enabled, previous dtype];
    // autocast_exit(device, was enabled, previous dtype) restores them, and leaving the outermost region
    // clears the cache of casted weights.
    OP(autocast_enter) {
      bool cuda = autocast_device(a);
      auto arr = Napi::Array::New(E, 2);
      arr.Set(0u, Napi::Boolean::New(E, cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled()));
      arr.Set(1u, Napi::String::New(E, dtype_name(cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype())));
      cuda ? at::autocast::set_enabled(a.b(1)) : at::autocast::set_cpu_enabled(a.b(1));
      cuda ? at::autocast::set_autocast_gpu_dtype(a.dtype(2)) : at::autocast::set_autocast_cpu_dtype(a.dtype(2));
      at::autocast::increment_nesting();
      return arr;
    } END,
    OP(autocast_exit) {
      bool cuda = autocast_device(a);
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
      cuda ? at::autocast::set_enabled(a.b(1)) : at::autocast::set_cpu_enabled(a.b(1));
      cuda ? at::autocast::set_autocast_gpu_dtype(a.dtype(2)) : at::autocast::set_autocast_cpu_dtype(a.dtype(2));
      return E.Undefined();
    } END,

    // ---- metadata and data out
    OP(shape) { auto s = a.t(0).sizes(); auto arr = Napi::Array::New(E, s.size()); for (uint32_t i = 0; i < s.size(); i++) arr.Set(i, Napi::Number::New(E, double(s[i]))); return arr; } END,
    OP(strides) { auto s = a.t(0).strides(); auto arr = Napi::Array::New(E, s.size()); for (uint32_t i = 0; i < s.size(); i++) arr.Set(i, Napi::Number::New(E, double(s[i]))); return arr; } END,
    OP(dtype) { return Napi::String::New(E, dtype_name(a.t(0).scalar_type())); } END,
    OP(device) { return Napi::String::New(E, a.t(0).device().str()); } END,
    OP(is_contiguous) { return Napi::Boolean::New(E, a.t(0).is_contiguous(memory_format(a, 1))); } END,
    OP(item) {
      at::Scalar s = a.t(0).item();
      if (s.isBoolean()) return Napi::Boolean::New(E, s.toBool());
      return Napi::Number::New(E, s.isIntegral(false) ? double(s.toLong()) : s.toDouble());
    } END,
    OP(bytes) {
      // A copy of the values, contiguous, on the CPU, as raw bytes in the tensor's dtype.
      Tensor t = a.t(0).detach().to(at::kCPU).contiguous();
      auto buf = Napi::ArrayBuffer::New(E, t.nbytes());
      if (t.nbytes()) std::memcpy(buf.Data(), t.data_ptr(), t.nbytes());
      return buf;
    } END,
    OP(from_bytes) {
      // New tensor from a typed array / Buffer copy: (bytes, shape, dtype).
      if (!a.info[0].IsTypedArray()) throw std::invalid_argument("expected argument 0 to be a typed array or Buffer");
      auto view = a.info[0].As<Napi::TypedArray>();
      auto dt = a.dtype(2);
      auto shape = a.ints(1);
      int64_t numel = 1;
      for (auto d : shape) numel *= d;
      size_t need = size_t(numel) * at::elementSize(dt);
      if (view.ByteLength() != need) throw std::invalid_argument("from_bytes: " + std::to_string(view.ByteLength()) + " bytes given, shape needs " + std::to_string(need));
      Tensor t = at::empty(shape, at::TensorOptions().dtype(dt));
      auto* src = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
      if (need) std::memcpy(t.data_ptr(), src, need);
      return ret(E, t);
    } END,

    // ---- random state, threads, build
    OP(manual_seed) { at::manual_seed(uint64_t(a.i64(0))); return E.Undefined(); } END,
    OP(get_rng_state) { auto gen = at::detail::getDefaultCPUGenerator(); std::lock_guard<std::mutex> lock(gen.mutex()); return ret(E, gen.get_state()); } END,
    OP(set_rng_state) { auto gen = at::detail::getDefaultCPUGenerator(); std::lock_guard<std::mutex> lock(gen.mutex()); gen.set_state(a.t(0)); return E.Undefined(); } END,
    OP(set_num_threads) { at::set_num_threads(int(a.i64(0))); return E.Undefined(); } END,
    OP(get_num_threads) { return Napi::Number::New(E, at::get_num_threads()); } END,
    OP(cuda_available) { return Napi::Boolean::New(E, at::hasCUDA()); } END,

    // ---- passing tensors between worker threads (each thread has its own JS handles)
    // share: parks a new reference and returns its id (a BigInt); adopt: takes it back, once, as a handle.
    OP(share) { return Napi::BigInt::New(E, park(a.t(0))); } END,
    OP(adopt) {
      if (!a.has(0) || !a.info[0].IsBigInt()) throw std::invalid_argument("expected argument 0 to be an id from share() (a BigInt)");
      bool lossless = false;
      uint64_t id = a.info[0].As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) throw std::invalid_argument("expected argument 0 to be an id from share(), got a BigInt outside uint64");
      return ret(E, unpark(id));
    } END,

    // ---- layers toolkit (src/nn: Conv1d for ECA attention; the autograd version counter that
    // ScaledStdConv2d's eval-mode weight cache compares to notice in-place weight changes)
    OP(conv1d) { return ret(E, at::conv1d(a.t(0), a.t(1), a.opt_t(2), a.ints(3), a.ints(4), a.ints(5), a.i64(6))); } END,
    OP(tensor_version) { return Napi::Number::New(E, double(a.t(0)._version())); } END,

    // ---- c10d (distributed.cc): one process group per process, collectives in place, DDP's Reducer
    OP(dist_available) { return Napi::Boolean::New(E, dist::available()); } END,
    OP(dist_init) { dist::init(a.str(0), a.i64(1), a.i64(2), a.i64(3), a.i64(4)); return E.Undefined(); } END,
    OP(dist_destroy) { dist::destroy(); return E.Undefined(); } END,
    OP(dist_initialized) { return Napi::Boolean::New(E, dist::initialized()); } END,
    OP(dist_rank) { return Napi::Number::New(E, double(dist::rank())); } END,
    OP(dist_world_size) { return Napi::Number::New(E, double(dist::world_size())); } END,
    OP(dist_all_reduce) { dist::all_reduce(a.t(0), a.str(1)); return a.info[0]; } END,
    OP(dist_broadcast) { dist::broadcast(a.t(0), a.i64(1)); return a.info[0]; } END,
    OP(dist_broadcast_coalesced) { auto ts = a.tensors(0); dist::broadcast_coalesced(ts, a.i64(1), a.i64(2)); return E.Undefined(); } END,
    OP(dist_barrier) { dist::barrier(); return E.Undefined(); } END,
    OP(dist_sync_batch_norm) { return ret(E, dist::sync_batch_norm(a.t(0), a.opt_t(1), a.opt_t(2), a.opt_t(3), a.opt_t(4), a.f64(5), a.f64(6))); } END,
    OP(ddp_reducer_new) { return Napi::Number::New(E, double(dist::reducer_new(a.tensors(0), a.i64(1), a.i64(2), a.b(3)))); } END,
    OP(ddp_prepare_forward) { return Napi::Boolean::New(E, dist::reducer_prepare_forward(a.i64(0))); } END,
    OP(ddp_prepare_backward) { dist::reducer_prepare_backward(a.i64(0), a.tensors(1)); return E.Undefined(); } END,
    OP(ddp_reducer_free) { dist::reducer_free(a.i64(0)); return E.Undefined(); } END,
};

const size_t kNumOps = sizeof(kOps) / sizeof(kOps[0]);

}  // namespace cz
