// The C ABI between the engine and a device plugin (the CUDA backend, the
// host-reference plugin), shaped like ggml-backend's but without aborts.
//
// A plugin is a shared library that exports three C symbols:
//   rl_plugin_api_version()  RL_DEVICE_ABI_VERSION it was built against;
//   rl_plugin_score()        0: cannot run on this machine (no driver, no
//                            device); higher is better;
//   rl_plugin_init()         its function table, rl_device_api.
// The engine's loader (engine/device/plugin_loader.h) dlopens it with
// RTLD_LOCAL, checks the version and the score before calling init, and
// refuses it with one logged line naming the library and why.
//
// Contracts shared by every entry:
//   - No entry aborts or throws; every one that can fail returns an
//     rl_status (gRPC's code numbering, as the engine's Status) and leaves
//     its message for rl_device_api.last_error on the calling thread.
//   - Pointers passed in are not retained past the call unless stated.
//   - A device is used from one thread at a time, except buffer_alloc and
//     buffer_free, which may be called concurrently (the executor's waves
//     allocate from parallel threads).
//   - Sizes are bytes. Offsets and sizes of copies must lie within the
//     buffer (RL_INVALID_ARGUMENT otherwise, nothing copied).
//
//
// Version 4 (this one): devices, memory and staging, asynchronous uploads
// and events, the ops of a Llama layer's forward pass, in-place layout
// transforms, and step graphs (a decode step's ops replayed as one captured
// graph). Ops are
// optional entries: NULL means the plugin does not run that op, and the
// engine refuses to place a model on it (Unimplemented naming the op), so a
// plugin can grow one op at a time.
//
// Contracts shared by the ops:
//   - Operands live in device buffers, named by rl_ref (a buffer and a byte
//     offset into it); a plugin checks that each operand's bytes lie inside
//     its buffer (RL_INVALID_ARGUMENT otherwise, nothing written).
//     Small per-call index arrays (token ids, positions, attention spans
//     and their block tables) are host memory, read before the call returns
//     (a GPU plugin copies them into device memory itself, as vLLM uploads
//     its step metadata).
//   - Floats are row-major: "rows x cols" means rows rows of cols floats,
//     row stride cols. Activations are float32.
//   - Ops run in issue order on the device's one stream. They may return
//     before the device finishes; download and synchronize wait for every
//     op issued before them, so a result read back is complete.
//   - Numerics are those of kernels/cpu (matmul.h states them per type):
//     quantized weights meet activations quantized to Q8 blocks of 32 with
//     a float scale, F32 weights accumulate in double. A plugin that cannot
//     meet them for a type says so in matmul_supported.
//     One exception a plugin may take, for prefill only (tokens > 8): a
//     quantized weight dequantized to BF16 and multiplied with x rounded
//     to BF16 on tensor cores (the CUDA backend's cuBLASLt path). Against
//     exact arithmetic on the stored weights its error is then within
//     2^-8 sum_k |w_k x_k| plus float rounding, the same order as the Q8
//     activations' own bound; the CUDA backend's
//     RELAYOUT_CUDA_QUANT_GEMV_MAX_TOKENS keeps the Q8 numerics up to a
//     larger batch.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_DEVICE_ABI_VERSION 4

#if defined(__GNUC__)
#define RL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define RL_PLUGIN_EXPORT
#endif

// gRPC's canonical codes, the subset a device returns.
typedef int32_t rl_status;
#define RL_OK 0
#define RL_INVALID_ARGUMENT 3
#define RL_NOT_FOUND 5
#define RL_RESOURCE_EXHAUSTED 8  // out of device or pinned host memory
#define RL_FAILED_PRECONDITION 9
#define RL_DATA_LOSS 15  // a buffer's guard bytes were overwritten
#define RL_UNIMPLEMENTED 12
#define RL_INTERNAL 13
#define RL_UNAVAILABLE 14  // the device or its driver went away

typedef struct rl_device rl_device;  // opaque: one opened device
typedef struct rl_buffer rl_buffer;  // opaque: one allocation on a device
typedef struct rl_event rl_event;    // opaque: a point in a device's stream of work

typedef struct rl_device_info {
  char name[64];             // "NVIDIA H200", "host reference"
  uint64_t total_bytes;      // device memory
  uint64_t free_bytes;       // as the driver reports it now
  uint64_t alignment;        // of every buffer's start, a power of two
  int32_t host_addressable;  // 1: rl_buffer_host_ptr gives a host pointer
  int32_t compute_major;     // compute capability (CUDA), else 0
  int32_t compute_minor;
} rl_device_info;

// A place in a buffer: the buffer and a byte offset into it.
typedef struct rl_ref {
  rl_buffer* buffer;
  uint64_t offset;
} rl_ref;

// Weight element types (kernels/cpu/matmul/matmul.h's WeightType).
#define RL_DTYPE_F32 0
#define RL_DTYPE_F16 1
#define RL_DTYPE_BF16 2
#define RL_DTYPE_Q8_0 3  // GGUF blocks of 32
#define RL_DTYPE_Q4_0 4
#define RL_DTYPE_Q4_1 5
#define RL_DTYPE_Q5_0 6
#define RL_DTYPE_Q5_1 7
#define RL_DTYPE_IQ4_NL 8
#define RL_DTYPE_Q2_K 9  // GGUF K-quant super-blocks of 256
#define RL_DTYPE_Q3_K 10
#define RL_DTYPE_Q4_K 11
#define RL_DTYPE_Q5_K 12
#define RL_DTYPE_Q6_K 13

// Weight layouts (matmul.h's WeightLayout; kernels/cpu/layout/ has each
// byte layout).
#define RL_LAYOUT_ROW_MAJOR 0        // float row-major, or GGUF blocks in file order
#define RL_LAYOUT_ROW_GROUP 1        // row_group_interleave.h: group_rows, k_block
#define RL_LAYOUT_QUANT_ROW_GROUP 2  // quant_row_group.h: group_rows
#define RL_LAYOUT_BF16_KPAIR 3       // bf16_kpair.h: group_rows

#define RL_ROPE_INTERLEAVED 0
#define RL_ROPE_HALVES 1

#define RL_KV_F32 0
#define RL_KV_F16 1

// A matmul's weight, W [rows = N outputs, cols = K inputs].
typedef struct rl_matmul_weight {
  rl_ref data;
  int32_t dtype;   // RL_DTYPE_*
  int32_t layout;  // RL_LAYOUT_*
  int64_t rows;
  int64_t cols;
  int32_t group_rows;  // 1 for row-major
  int32_t k_block;     // RL_LAYOUT_ROW_GROUP only
} rl_matmul_weight;

// The shape of attention and of the paged KV cache.
typedef struct rl_attention_params {
  int32_t num_heads;
  int32_t num_kv_heads;  // divides num_heads
  int32_t head_dim;
  int32_t block_size;   // tokens per KV block
  float scale;          // usually 1 / sqrt(head_dim)
  int32_t kv_dtype;     // RL_KV_*
  int64_t pool_blocks;  // blocks in each pool
} rl_attention_params;

// One sequence's rows of a batch: rows first_row .. first_row + rows - 1
// at positions start_position .. start_position + rows - 1; block_table
// (host memory) maps its positions [0, start_position + rows) to blocks.
typedef struct rl_attention_span {
  int64_t first_row;
  int64_t rows;
  int64_t start_position;
  const int32_t* block_table;
} rl_attention_span;

typedef struct rl_device_api {
  int32_t api_version;  // RL_DEVICE_ABI_VERSION
  const char* name;     // short plugin name: "cuda", "hostref"

  // Devices this plugin sees (>= 0).
  int32_t (*device_count)(void);
  // Opens device `index`; *out is closed with close_device.
  rl_status (*open_device)(int32_t index, rl_device** out);
  void (*close_device)(rl_device* device);
  rl_status (*device_info)(rl_device* device, rl_device_info* out);

  // The bytes an allocation of `bytes` takes (padding and guards included):
  // what the engine's ledger counts.
  uint64_t (*alloc_size)(rl_device* device, uint64_t bytes);
  // A buffer of `bytes` (0 allowed). RL_RESOURCE_EXHAUSTED when it does not
  // fit; contents undefined.
  rl_status (*buffer_alloc)(rl_device* device, uint64_t bytes, rl_buffer** out);
  // Frees the buffer. RL_DATA_LOSS when the plugin detected that something
  // wrote outside it (the memory is freed all the same).
  rl_status (*buffer_free)(rl_device* device, rl_buffer* buffer);
  // A host pointer to the buffer's bytes, or NULL unless host_addressable.
  void* (*buffer_host_ptr)(rl_buffer* buffer);

  // Synchronous copies between host memory and a buffer, and a fill.
  rl_status (*upload)(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                      uint64_t bytes);
  rl_status (*download)(rl_device* device, const rl_buffer* src, uint64_t offset, void* dst,
                        uint64_t bytes);
  rl_status (*fill)(rl_device* device, rl_buffer* dst, uint64_t offset, uint8_t value,
                    uint64_t bytes);

  // Host memory the device copies from fastest (pinned). *out freed with
  // host_free. (optional: NULL means the engine uses ordinary host memory.)
  rl_status (*host_alloc)(rl_device* device, uint64_t bytes, void** out);
  void (*host_free)(rl_device* device, void* ptr);

  // Waits for all work issued to the device (the copies above are
  // synchronous; ops may not be).
  rl_status (*synchronize)(rl_device* device);

  // The message of the last failure on the calling thread ("" if none);
  // valid until the next call on that thread.
  const char* (*last_error)(void);

  // ---- Ops (optional; see the contracts above) ----

  // Whether matmul runs this weight (type, layout and parameters); 0 or 1.
  int32_t (*matmul_supported)(rl_device* device, const rl_matmul_weight* w);
  // y[tokens, w.rows] = x[tokens, w.cols] * W^T. tokens >= 1.
  rl_status (*matmul)(rl_device* device, const rl_matmul_weight* w, rl_ref x, int64_t tokens,
                      rl_ref y);
  // y[r, c] += bias[c] for r < rows, c < cols.
  rl_status (*add_row_bias)(rl_device* device, rl_ref bias, int64_t rows, int64_t cols, rl_ref y);
  // out[i, :] = row tokens[i] of table[vocab, dim] (of `dtype`, rows in
  // their common layout: floats, or GGUF blocks), as floats. Every token in
  // [0, vocab) (RL_INVALID_ARGUMENT otherwise).
  rl_status (*embedding)(rl_device* device, rl_ref table, int32_t dtype, int64_t vocab, int64_t dim,
                         const int32_t* tokens, int64_t n, rl_ref out);
  // out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight[:], in
  // place when out == x.
  rl_status (*rms_norm)(rl_device* device, rl_ref x, rl_ref weight, int64_t rows, int64_t dim,
                        float eps, rl_ref out);
  // Rotates the first rope_dim dimensions of every head of x[rows, heads *
  // head_dim] in place, row r at positions[r], by inv_freq[rope_dim / 2]
  // (floats on the device). pairing: RL_ROPE_INTERLEAVED (pairs 2i, 2i+1;
  // GGUF's order) or RL_ROPE_HALVES (pairs i, i + rope_dim / 2; Hugging
  // Face's rotate-half order).
  rl_status (*rope)(rl_device* device, rl_ref x, int64_t rows, int32_t heads, int32_t head_dim,
                    int32_t rope_dim, const int32_t* positions, rl_ref inv_freq, int32_t pairing);
  // dst[i] += src[i], i < n.
  rl_status (*add)(rl_device* device, rl_ref src, int64_t n, rl_ref dst);
  // out[i] = silu(gate[i]) * up[i], i < n; out may be gate.
  rl_status (*silu_gate)(rl_device* device, rl_ref gate, rl_ref up, int64_t n, rl_ref out);
  // Writes the K and V rows of each span (k, v: [rows, kv_heads * head_dim]
  // floats, span rows at first_row) into the paged pools at their
  // positions' slots: pool[block_table[pos / block_size] * block_size +
  // pos % block_size], elements of kv_dtype. pool_blocks bounds the block
  // ids.
  rl_status (*kv_write)(rl_device* device, const rl_attention_params* p, rl_ref k, rl_ref v,
                        const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                        rl_ref v_pool);
  // Causal attention with grouped KV heads: every row of q ([rows, heads *
  // head_dim]) attends to its sequence's positions [0, its position] in the
  // pools (written by kv_write before), softmax(q k^T * scale) v into out
  // (same shape as q). Prefill (a span of many rows) and decode (many spans
  // of one row) are the same call.
  rl_status (*attention)(rl_device* device, const rl_attention_params* p, rl_ref q,
                         const rl_attention_span* spans, int64_t num_spans, rl_ref k_pool,
                         rl_ref v_pool, rl_ref out);
  // out_host[r] = the first index of row r's maximum (x: rows x cols
  // floats), written to host memory before the call returns: greedy
  // sampling without downloading the logits.
  rl_status (*argmax)(rl_device* device, rl_ref x, int64_t rows, int64_t cols, int32_t* out_host);

  // ---- Asynchronous uploads and events (optional, all four or none) ----

  // Starts copying `bytes` from pinned host memory (host_alloc) into dst
  // and may return before the copy is done; it is ordered with every other
  // copy and op of the device (one in-order stream). The caller must not
  // touch src until an event recorded after the call has completed.
  rl_status (*upload_async)(rl_device* device, rl_buffer* dst, uint64_t offset, const void* src,
                            uint64_t bytes);
  rl_status (*event_create)(rl_device* device, rl_event** out);
  void (*event_destroy)(rl_device* device, rl_event* event);
  // Marks the stream after everything issued so far.
  rl_status (*event_record)(rl_device* device, rl_event* event);
  // Blocks until the work before the event's last record is done (at once
  // for an event never recorded).
  rl_status (*event_synchronize)(rl_device* device, rl_event* event);

  // ---- Layout transforms (optional) ----

  // The device scratch transform_in_place needs to turn a weight uploaded
  // in its common layout (row-major floats, or GGUF blocks in file order)
  // into w's layout (w.data is not read); UINT64_MAX when it cannot. A
  // permutation of row groups needs one group's bytes.
  uint64_t (*transform_scratch_bytes)(rl_device* device, const rl_matmul_weight* w);
  // Converts the bytes at w.data, the tensor in its common layout, in
  // place into w's layout, touching no memory but them and the first
  // transform_scratch_bytes(w) bytes at `scratch` (a buffer of this
  // device). The engine's planner counted that scratch in the budget.
  rl_status (*transform_in_place)(rl_device* device, const rl_matmul_weight* w, rl_ref scratch);

  // ---- Step graphs (optional, both or none) ----

  // The engine brackets the ops of one forward step (a decode step of a
  // batch) with step_begin and step_end and issues nothing but ops between
  // them (no copies, fills, downloads, argmax or synchronize; a plugin
  // answers those with RL_FAILED_PRECONDITION). The plugin may defer the
  // ops to step_end and run them as one graph: captured the first time a
  // step of its shape is seen (the same ops on the same operands with the
  // same sizes, plus bounds it derives from the metadata such as a
  // context-length bucket), then replayed with each later step's metadata
  // (token ids, positions, spans, block tables), which the ops' host arrays
  // carry as always. CUDA graphs turn a decode step's hundreds of launches
  // into one. An op's argument errors are still returned by the op itself;
  // errors of the deferred work come back from step_end. Steps do not nest.
  rl_status (*step_begin)(rl_device* device);
  rl_status (*step_end)(rl_device* device);
} rl_device_api;

// The three symbols a plugin exports.
RL_PLUGIN_EXPORT int32_t rl_plugin_api_version(void);
RL_PLUGIN_EXPORT int32_t rl_plugin_score(void);
RL_PLUGIN_EXPORT const rl_device_api* rl_plugin_init(void);

#ifdef __cplusplus
}
#endif
