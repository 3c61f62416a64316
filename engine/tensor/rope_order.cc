#include "engine/tensor/rope_order.h"

#include <cstring>

namespace relayout {

Status ReorderRopeRows(std::span<std::byte> data, int64_t n_heads, int64_t head_dim,
                       uint64_t row_bytes, RopeOrder from, RopeOrder to,
                       std::span<std::byte> scratch) {
  if (n_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0) {
    return Status::InvalidArgument("rope reorder",
                                   StrCat("bad heads ", n_heads, " x head_dim ", head_dim));
  }
  const uint64_t head_bytes = static_cast<uint64_t>(head_dim) * row_bytes;
  if (data.size() != static_cast<uint64_t>(n_heads) * head_bytes) {
    return Status::InvalidArgument(
        "rope reorder", StrCat(data.size(), " bytes is not ", n_heads, " heads of ", head_dim,
                               " rows of ", row_bytes, " bytes"));
  }
  if (scratch.size() < head_bytes) {
    return Status::InvalidArgument(
        "rope reorder", StrCat("scratch of ", scratch.size(), " bytes, need ", head_bytes));
  }
  if (from == to) return Status::OK();
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    std::byte* head = data.data() + static_cast<uint64_t>(h) * head_bytes;
    std::memcpy(scratch.data(), head, head_bytes);
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t interleaved = 2 * i + j;
        const int64_t rotate_half = j * half + i;
        const int64_t dst = to == RopeOrder::kInterleaved ? interleaved : rotate_half;
        const int64_t src = to == RopeOrder::kInterleaved ? rotate_half : interleaved;
        std::memcpy(head + static_cast<uint64_t>(dst) * row_bytes,
                    scratch.data() + static_cast<uint64_t>(src) * row_bytes, row_bytes);
      }
    }
  }
  return Status::OK();
}

}  // namespace relayout
