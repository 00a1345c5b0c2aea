// Optimizers and LR schedulers.
export {};
