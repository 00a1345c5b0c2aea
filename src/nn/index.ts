export * from './module.js';
export * from './layers.js';
export * as functional from './functional.js';
export * as init from './init.js';
export * from './blocks.js';
// The block toolbox: one concept per file.
export * from './activations.js';
export * from './padding.js';
export * from './make_divisible.js';
export * from './conv1d.js';
export * from './conv2d_same.js';
export * from './conv_norm_act.js';
export * from './squeeze_excite.js';
export * from './drop_path.js';
export * from './std_conv.js';
export * from './channel_shuffle.js';
export * from './head.js';
export * from './efficientnet_blocks.js';
