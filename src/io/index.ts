// Weight files: filled by the io work (load/save).
export async function load(_path: string): Promise<Record<string, import('../tensor/tensor.js').Tensor>> { throw new Error('io: not yet'); }
