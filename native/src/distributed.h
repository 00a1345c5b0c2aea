// c10d from libtorch: one process group per process (TCPStore rendezvous, gloo), collectives on tensors,
// and DistributedDataParallel's gradient Reducer. The op table (ops.cc) binds these; without c10d in the
// libtorch the addon was built against, each raises E_UNSUPPORTED naming what is missing.
#pragma once
#include <ATen/ATen.h>
#include <stdexcept>
#include <string>
#include <vector>

namespace cz {
namespace dist {

// Raised when the libtorch convzoo was built against has no c10d (E_UNSUPPORTED in JS).
struct UnsupportedError : std::runtime_error { using std::runtime_error::runtime_error; };

bool available();
// Joins the group: rank 0 serves the TCPStore at host:port, every rank connects; returns when all
// world_size ranks have joined, or throws after timeout_ms.
void init(const std::string& host, int64_t port, int64_t rank, int64_t world_size, int64_t timeout_ms);
void destroy();
bool initialized();
int64_t rank();
int64_t world_size();
// In place, blocking. op: sum | product | min | max.
void all_reduce(at::Tensor& t, const std::string& op);
void broadcast(at::Tensor& t, int64_t src);
// Many tensors from src in few messages (DDP's start: parameters and buffers from rank 0).
void broadcast_coalesced(std::vector<at::Tensor>& ts, int64_t src, int64_t buffer_bytes);
void barrier();
// Batch norm in training mode with the statistics of every rank's batch (torch.nn.SyncBatchNorm): the
// channel sums and squared deviations are accumulated in double and all-reduced, the normalisation is
// libtorch's own kernel, and backward all-reduces the two sums of the input gradient. Updates the running
// statistics (unbiased variance over the global count) when given.
at::Tensor sync_batch_norm(const at::Tensor& x, const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                           const c10::optional<at::Tensor>& running_mean, const c10::optional<at::Tensor>& running_var, double momentum, double eps);

// DistributedDataParallel's Reducer over these parameters: gradients bucketed (the first bucket
// first_bucket_bytes, then bucket_bytes each) and averaged over the ranks while backward runs.
int64_t reducer_new(std::vector<at::Tensor> params, int64_t bucket_bytes, int64_t first_bucket_bytes, bool find_unused);
// Before each training forward: rebuilds the buckets in the order gradients arrived (once), then arms the reducer.
bool reducer_prepare_forward(int64_t id);
// After the forward, before backward; outputs are searched for unused parameters when find_unused.
void reducer_prepare_backward(int64_t id, const std::vector<at::Tensor>& outputs);
void reducer_free(int64_t id);

}  // namespace dist
}  // namespace cz
