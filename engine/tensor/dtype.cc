#include "engine/tensor/dtype.h"

#include <array>

#include "kernels/quant_format.h"

namespace relayout {
namespace {

namespace k = kernels;

constexpr std::array<DTypeTraits, 25> kTraits = {{
    {DType::kF32, "F32", 1, 4, true, false},
    {DType::kF16, "F16", 1, 2, true, false},
    {DType::kBF16, "BF16", 1, 2, true, false},
    {DType::kF64, "F64", 1, 8, true, false},
    {DType::kI8, "I8", 1, 1, false, false},
    {DType::kU8, "U8", 1, 1, false, false},
    {DType::kI16, "I16", 1, 2, false, false},
    {DType::kU16, "U16", 1, 2, false, false},
    {DType::kI32, "I32", 1, 4, false, false},
    {DType::kU32, "U32", 1, 4, false, false},
    {DType::kI64, "I64", 1, 8, false, false},
    {DType::kU64, "U64", 1, 8, false, false},
    {DType::kBool, "BOOL", 1, 1, false, false},
    {DType::kQ8_0, "Q8_0", k::kQK, sizeof(k::BlockQ8_0), false, true},
    {DType::kQ4_0, "Q4_0", k::kQK, sizeof(k::BlockQ4_0), false, true},
    {DType::kQ4_1, "Q4_1", k::kQK, sizeof(k::BlockQ4_1), false, true},
    {DType::kQ5_0, "Q5_0", k::kQK, sizeof(k::BlockQ5_0), false, true},
    {DType::kQ5_1, "Q5_1", k::kQK, sizeof(k::BlockQ5_1), false, true},
    {DType::kQ2_K, "Q2_K", k::kQKK, k::kBlockQ2_KBytes, false, true},
    {DType::kQ3_K, "Q3_K", k::kQKK, k::kBlockQ3_KBytes, false, true},
    {DType::kQ4_K, "Q4_K", k::kQKK, k::kBlockQ4_KBytes, false, true},
    {DType::kQ5_K, "Q5_K", k::kQKK, k::kBlockQ5_KBytes, false, true},
    {DType::kQ6_K, "Q6_K", k::kQKK, k::kBlockQ6_KBytes, false, true},
    {DType::kQ8_K, "Q8_K", k::kQKK, k::kBlockQ8_KBytes, false, true},
    {DType::kIQ4_NL, "IQ4_NL", k::kQK, sizeof(k::BlockIQ4_NL), false, true},
}};

constexpr bool TraitsIndexedByEnum() {
  for (size_t i = 0; i < kTraits.size(); ++i) {
    if (static_cast<size_t>(kTraits[i].dtype) != i) return false;
  }
  return true;
}
static_assert(TraitsIndexedByEnum(), "kTraits must list DType values in enum order");

}  // namespace

const DTypeTraits& Traits(DType dtype) { return kTraits[static_cast<size_t>(dtype)]; }

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const DTypeTraits& t : kTraits) {
    if (t.name == name) return t.dtype;
  }
  return std::nullopt;
}

std::optional<uint64_t> ElementCount(std::span<const int64_t> shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > UINT64_MAX / static_cast<uint64_t>(d)) return std::nullopt;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

Result<uint64_t> ByteSizeOf(DType dtype, std::span<const int64_t> shape) {
  const DTypeTraits& t = Traits(dtype);
  for (int64_t d : shape) {
    if (d < 0)
      return Status::InvalidArgument(StrCat("negative dimension in shape ", ShapeToString(shape)));
  }
  const std::optional<uint64_t> elems = ElementCount(shape);
  if (!elems)
    return Status::InvalidArgument(StrCat("shape ", ShapeToString(shape), " overflows 64 bits"));
  if (t.block_elems > 1) {
    const int64_t inner = shape.empty() ? 1 : shape.back();
    if (inner % t.block_elems != 0) {
      return Status::InvalidArgument(StrCat("innermost dimension ", inner, " of ", t.name,
                                            " tensor is not a multiple of its block size ",
                                            t.block_elems));
    }
  }
  const uint64_t blocks = *elems / t.block_elems;
  if (blocks != 0 && blocks > UINT64_MAX / t.block_bytes) {
    return Status::InvalidArgument(
        StrCat("byte size of shape ", ShapeToString(shape), " overflows 64 bits"));
  }
  return blocks * t.block_bytes;
}

std::string ShapeToString(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace relayout
