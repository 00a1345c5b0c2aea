// Training on more than one process or machine, on libtorch's c10d: `cz.distributed`.
export {
  initProcessGroup,
  destroyProcessGroup,
  isAvailable,
  requireDistributed,
  isInitialized,
  getRank,
  getWorldSize,
  allReduce,
  broadcast,
  broadcastCoalesced,
  barrier,
  DEFAULT_TIMEOUT_SECONDS,
  type Backend,
  type ReduceOp,
  type InitProcessGroupOptions,
} from './process_group.js';
export { DistributedDataParallel, convertSyncBatchNorm, type DistributedDataParallelOptions } from './ddp.js';
