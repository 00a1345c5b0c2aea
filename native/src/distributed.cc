#include "distributed.h"
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#ifdef CZ_WITH_C10D
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#endif

namespace cz {
namespace dist {

[[noreturn]] [[maybe_unused]] static void unsupported(const char* what) {
  throw UnsupportedError(
      std::string(what) + ": this build of convzoo has no distributed support (libtorch without c10d, or gloo's headers missing at build time: on Debian, apt-get install libgloo-dev, then npm rebuild convzoo)");
}

#ifdef CZ_WITH_C10D
namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};
std::unique_ptr<Group> g_group;
std::unordered_map<int64_t, std::unique_ptr<c10d::Reducer>> g_reducers;
int64_t g_next_reducer = 1;

c10d::ProcessGroupGloo& group(const char* what) {
  if (!g_group) throw std::invalid_argument(std::string(what) + ": no process group; call distributed.initProcessGroup() first");
  return *g_group->pg;
}

void wait(c10::intrusive_ptr<c10d::Work> work) { work->wait(); }

c10d::ReduceOp reduce_op(const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "max") return c10d::ReduceOp::MAX;
  throw std::invalid_argument("all_reduce: op must be sum, product, min or max, got '" + op + "'");
}

// Sums over N, H, W accumulated in double (no double copy of x is made).
at::Tensor channel_sums(const at::Tensor& t) { return at::sum(t, {0, 2, 3}, false, at::kDouble); }

void all_reduce_in_place(at::Tensor& t, const char* what, c10d::ReduceOp op = c10d::ReduceOp::SUM) {
  if (!t.is_contiguous()) throw std::invalid_argument(std::string(what) + ": the tensor must be contiguous (it is reduced in place)");
  c10d::AllreduceOptions o;
  o.reduceOp = op;
  std::vector<at::Tensor> ts{t};
  wait(group(what).allreduce(ts, o));
}

struct SyncBatchNorm : public torch::autograd::Function<SyncBatchNorm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor running_mean, at::Tensor running_var, double momentum, double eps) {
    at::NoGradGuard no_grad;
    const int64_t c = x.size(1);
    const double local = double(x.numel() / std::max<int64_t>(c, 1));
    // One message: the channel sums and this rank's element count (the ranks' batches may differ).
    auto stats = at::cat({channel_sums(x), at::full({1}, local, x.options().dtype(at::kDouble))}).contiguous();
    all_reduce_in_place(stats, "SyncBatchNorm");
    const double count = stats[c].item<double>();
    auto mean = stats.narrow(0, 0, c) / count;
    // Two passes, as libtorch's batch norm: squared deviations from the global mean.
    auto centred = x - mean.to(x.scalar_type()).view({1, c, 1, 1});
    auto sq = channel_sums(centred * centred).contiguous();
    all_reduce_in_place(sq, "SyncBatchNorm");
    auto var = sq / count;
    auto invstd = (var + eps).rsqrt();
    auto y = at::batch_norm(x, weight, bias, mean.to(x.scalar_type()), var.to(x.scalar_type()), false, 0.0, eps, false);
    if (running_mean.defined() && running_var.defined()) {
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1 - momentum).add_((var * (count / std::max(count - 1, 1.0))).to(running_var.scalar_type()), momentum);
    }
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["has_weight"] = weight.defined();
    ctx->saved_data["has_bias"] = bias.defined();
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto x = saved[0], weight = saved[1], mean = saved[2], invstd = saved[3];
    const double count = ctx->saved_data["count"].toDouble();
    const int64_t c = x.size(1);
    // In double: the input's gradient is what is left after removing its projections on 1 and xhat, a
    // difference that float32 leaves 5x less accurate than libtorch's own backward.
    auto dy = grads[0].to(at::kDouble);
    auto view = [&](const at::Tensor& t) { return t.view({1, c, 1, 1}); };
    auto xhat = (x.to(at::kDouble) - view(mean)) * view(invstd);
    auto sum_dy = channel_sums(dy);
    auto sum_dy_xhat = channel_sums(dy * xhat);
    // The parameters' gradients are this rank's (DistributedDataParallel averages them); the input's needs
    // the sums over every rank.
    auto gw = ctx->saved_data["has_weight"].toBool() ? sum_dy_xhat.to(x.scalar_type()) : at::Tensor();
    auto gb = ctx->saved_data["has_bias"].toBool() ? sum_dy.to(x.scalar_type()) : at::Tensor();
    auto both = at::cat({sum_dy, sum_dy_xhat}).contiguous();
    all_reduce_in_place(both, "SyncBatchNorm backward");
    auto mean_dy = both.narrow(0, 0, c) / count;
    auto mean_dy_xhat = both.narrow(0, c, c) / count;
    auto scale = weight.defined() ? invstd * weight.to(at::kDouble) : invstd;
    auto dx = ((dy - view(mean_dy) - xhat * view(mean_dy_xhat)) * view(scale)).to(x.scalar_type());
    return {dx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::shared_ptr<::gloo::transport::Device> make_device(const std::string& host) {
  // As torch.distributed: GLOO_SOCKET_IFNAME names the interface; a loopback rendezvous stays on loopback;
  // otherwise the interface this machine's hostname resolves to.
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (host == "127.0.0.1" || host == "localhost" || host == "::1") return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

c10d::Reducer& reducer(int64_t id) {
  auto it = g_reducers.find(id);
  if (it == g_reducers.end()) throw std::invalid_argument("no DistributedDataParallel reducer " + std::to_string(id) + " (freed, or never made)");
  return *it->second;
}

}  // namespace

bool available() { return true; }

void init(const std::string& host, int64_t port, int64_t rank, int64_t world_size, int64_t timeout_ms) {
  if (g_group) throw std::invalid_argument("init_process_group: this process is already in a process group (destroy it first)");
  if (world_size < 1 || rank < 0 || rank >= world_size) throw std::invalid_argument("init_process_group: rank " + std::to_string(rank) + " is outside world size " + std::to_string(world_size));
  if (port < 1 || port > 65535) throw std::invalid_argument("init_process_group: port " + std::to_string(port) + " is outside 1-65535");
  if (timeout_ms < 1) throw std::invalid_argument("init_process_group: timeout must be positive");
  auto timeout = std::chrono::milliseconds(timeout_ms);
  c10d::TCPStoreOptions so;
  so.port = uint16_t(port);
  so.isServer = rank == 0;
  so.numWorkers = size_t(world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(host, so);
  auto store = c10::make_intrusive<c10d::PrefixStore>("convzoo", tcp);
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(make_device(host));
  options->threads = 2;
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, int(rank), int(world_size), options);
  g_group = std::make_unique<Group>(Group{tcp, pg});
}

void destroy() {
  g_reducers.clear();
  g_group.reset();
}

bool initialized() { return bool(g_group); }
int64_t rank() { return group("rank").getRank(); }
int64_t world_size() { return group("world_size").getSize(); }

void all_reduce(at::Tensor& t, const std::string& op) { all_reduce_in_place(t, "all_reduce", reduce_op(op)); }

void broadcast(at::Tensor& t, int64_t src) {
  auto& pg = group("broadcast");
  if (src < 0 || src >= pg.getSize()) throw std::invalid_argument("broadcast: source rank " + std::to_string(src) + " is outside world size " + std::to_string(pg.getSize()));
  if (!t.is_contiguous()) throw std::invalid_argument("broadcast: the tensor must be contiguous (it is written in place)");
  c10d::BroadcastOptions o;
  o.rootRank = src;
  std::vector<at::Tensor> ts{t};
  wait(pg.broadcast(ts, o));
}

void broadcast_coalesced(std::vector<at::Tensor>& ts, int64_t src, int64_t buffer_bytes) {
  group("broadcast_coalesced");
  if (buffer_bytes < 1) throw std::invalid_argument("broadcast_coalesced: buffer size must be positive");
  c10d::broadcast_coalesced(g_group->pg, ts, size_t(buffer_bytes), int(src));
}

void barrier() { wait(group("barrier").barrier()); }

at::Tensor sync_batch_norm(const at::Tensor& x, const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                           const c10::optional<at::Tensor>& running_mean, const c10::optional<at::Tensor>& running_var, double momentum, double eps) {
  group("SyncBatchNorm");
  if (x.dim() != 4) throw std::invalid_argument("sync_batch_norm: expected a 4-d (N, C, H, W) input, got " + std::to_string(x.dim()) + "-d");
  return SyncBatchNorm::apply(x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor()), running_mean.value_or(at::Tensor()),
                              running_var.value_or(at::Tensor()), momentum, eps);
}

int64_t reducer_new(std::vector<at::Tensor> params, int64_t bucket_bytes, int64_t first_bucket_bytes, bool find_unused) {
  group("DistributedDataParallel");
  if (params.empty()) throw std::invalid_argument("DistributedDataParallel: the model has no parameters that require gradients");
  if (bucket_bytes < 1 || first_bucket_bytes < 1) throw std::invalid_argument("DistributedDataParallel: bucket sizes must be positive");
  for (auto& p : params) {
    if (!p.requires_grad()) throw std::invalid_argument("DistributedDataParallel: every parameter given must require gradients");
  }
  // Every rank must hold the same parameters (count, shapes, dtypes) or the buckets would not match.
  c10d::verify_params_across_processes(g_group->pg, params, c10::nullopt);
  std::vector<bool> sparse(params.size(), false);
  auto assigned = c10d::compute_bucket_assignment_by_size(params, {size_t(first_bucket_bytes), size_t(bucket_bytes)}, sparse);
  // As DistributedDataParallel: the last parameters' gradients come first in backward, so the buckets go in reverse.
  auto indices = std::get<0>(assigned);
  auto limits = std::get<1>(assigned);
  std::reverse(indices.begin(), indices.end());
  std::reverse(limits.begin(), limits.end());
  auto r = std::make_unique<c10d::Reducer>(params, indices, limits, g_group->pg, sparse, bucket_bytes, find_unused,
                                           /*gradient_as_bucket_view=*/false, std::unordered_map<size_t, std::string>{}, first_bucket_bytes);
  int64_t id = g_next_reducer++;
  g_reducers.emplace(id, std::move(r));
  return id;
}

bool reducer_prepare_forward(int64_t id) {
  auto& r = reducer(id);
  r.prepare_for_forward();
  return r.rebuild_buckets();
}

void reducer_prepare_backward(int64_t id, const std::vector<at::Tensor>& outputs) { reducer(id).prepare_for_backward(outputs); }

void reducer_free(int64_t id) { g_reducers.erase(id); }

#else

bool available() { return false; }
void init(const std::string&, int64_t, int64_t, int64_t, int64_t) { unsupported("init_process_group"); }
void destroy() {}
bool initialized() { return false; }
int64_t rank() { unsupported("rank"); }
int64_t world_size() { unsupported("world_size"); }
void all_reduce(at::Tensor&, const std::string&) { unsupported("all_reduce"); }
void broadcast(at::Tensor&, int64_t) { unsupported("broadcast"); }
void broadcast_coalesced(std::vector<at::Tensor>&, int64_t, int64_t) { unsupported("broadcast_coalesced"); }
void barrier() { unsupported("barrier"); }
at::Tensor sync_batch_norm(const at::Tensor&, const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&,
                           const c10::optional<at::Tensor>&, double, double) {
  unsupported("SyncBatchNorm");
}
int64_t reducer_new(std::vector<at::Tensor>, int64_t, int64_t, bool) { unsupported("DistributedDataParallel"); }
bool reducer_prepare_forward(int64_t) { unsupported("DistributedDataParallel"); }
void reducer_prepare_backward(int64_t, const std::vector<at::Tensor>&) { unsupported("DistributedDataParallel"); }
void reducer_free(int64_t) {}

#endif

}  // namespace dist
}  // namespace cz
