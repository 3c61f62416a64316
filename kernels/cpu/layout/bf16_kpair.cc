#include "kernels/cpu/layout/bf16_kpair.h"

namespace relayout::kernels {

RowGroupParams Bf16KPairAsRowGroup(const Bf16KPairParams& p) {
  return RowGroupParams{
      .rows = p.rows, .cols = p.cols, .elem_bytes = 2, .group_rows = p.group_rows, .k_block = 2};
}

size_t Bf16KPairScratchBytes(const Bf16KPairParams& p) {
  return RowGroupScratchBytes(Bf16KPairAsRowGroup(p));
}

size_t Bf16KPairGroupCount(const Bf16KPairParams& p) {
  return RowGroupCount(Bf16KPairAsRowGroup(p));
}

bool Bf16KPairForward(const void* src, void* dst, const Bf16KPairParams& p, size_t first_group,
                      size_t num_groups) {
  return RowGroupInterleaveForward(src, dst, Bf16KPairAsRowGroup(p), first_group, num_groups);
}

bool Bf16KPairInverse(const void* src, void* dst, const Bf16KPairParams& p, size_t first_group,
                      size_t num_groups) {
  return RowGroupInterleaveInverse(src, dst, Bf16KPairAsRowGroup(p), first_group, num_groups);
}

bool Bf16KPairForwardInPlace(void* data, const Bf16KPairParams& p, size_t first_group,
                             size_t num_groups, void* scratch, size_t scratch_bytes) {
  return RowGroupInterleaveForwardInPlace(data, Bf16KPairAsRowGroup(p), first_group, num_groups,
                                          scratch, scratch_bytes);
}

bool Bf16KPairInverseInPlace(void* data, const Bf16KPairParams& p, size_t first_group,
                             size_t num_groups, void* scratch, size_t scratch_bytes) {
  return RowGroupInterleaveInverseInPlace(data, Bf16KPairAsRowGroup(p), first_group, num_groups,
                                          scratch, scratch_bytes);
}

}  // namespace relayout::kernels
