// Element types of checkpoint tensors, from both containers.
//
// A dtype is either elementwise (byte size = elements * element bytes) or
// block-quantized (a row of K elements is K / block_elems blocks of
// block_bytes; K must divide by block_elems). ByteSizeOf is the one place
// that turns (dtype, shape) into bytes, with overflow checks, so readers,
// planner and kernels agree.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/status.h"

namespace relayout {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kF64,
  kI8,
  kU8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kBool,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
  kQ8_K,
  kIQ4_NL,
};

struct DTypeTraits {
  DType dtype;
  std::string_view name;  // "F32", "Q4_1", ...: the safetensors / ggml spelling
  uint32_t block_elems;   // 1 for elementwise types
  uint32_t block_bytes;   // bytes per block (per element when block_elems == 1)
  bool is_float;          // F32/F16/BF16/F64
  bool is_quantized;      // block-quantized
};

const DTypeTraits& Traits(DType dtype);
inline std::string_view DTypeName(DType dtype) { return Traits(dtype).name; }
// By the safetensors / ggml spelling ("F32", "BF16", "Q4_1"); nullopt if unknown.
std::optional<DType> DTypeFromName(std::string_view name);

// Bytes of a tensor of this dtype and shape (outermost dimension first).
// InvalidArgument (message without a subject; callers prefix the tensor name)
// when a dimension is negative, the innermost dimension does not divide by the
// block size, or the size overflows 64 bits.
Result<uint64_t> ByteSizeOf(DType dtype, std::span<const int64_t> shape);

// Product of dims; nullopt on negative dims or overflow.
std::optional<uint64_t> ElementCount(std::span<const int64_t> shape);

// "[512, 64]"
std::string ShapeToString(std::span<const int64_t> shape);

}  // namespace relayout
