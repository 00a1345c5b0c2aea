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

struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) {
    std::vector<at::Tensor> ts{x.clone(at::MemoryFormat::Contiguous)};
    wait(group("all_reduce").allreduce(ts));
    return ts[0];
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list grads) {
    std::vector<at::Tensor> ts{grads[0].contiguous().clone()};
    wait(group("all_reduce backward").allreduce(ts));
    return {ts[0]};
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

void all_reduce(at::Tensor& t, const std::string& op) {
  c10d::AllreduceOptions o;
  o.reduceOp = reduce_op(op);
  if (!t.is_contiguous()) throw std::invalid_argument("all_reduce: the tensor must be contiguous (it is reduced in place)");
  std::vector<at::Tensor> ts{t};
  wait(group("all_reduce").allreduce(ts, o));
}

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

at::Tensor all_reduce_sum_autograd(const at::Tensor& t) {
  group("all_reduce");
  return AllReduceSum::apply(t);
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
at::Tensor all_reduce_sum_autograd(const at::Tensor&) { unsupported("all_reduce"); }
int64_t reducer_new(std::vector<at::Tensor>, int64_t, int64_t, bool) { unsupported("DistributedDataParallel"); }
bool reducer_prepare_forward(int64_t) { unsupported("DistributedDataParallel"); }
void reducer_prepare_backward(int64_t, const std::vector<at::Tensor>&) { unsupported("DistributedDataParallel"); }
void reducer_free(int64_t) {}

#endif

}  // namespace dist
}  // namespace cz
