// The scalar reference Matmul, built on the reference GEMVs of each layout.
#include "kernels/cpu/matmul/matmul.h"
#include "kernels/cpu/reference/gemv.h"

namespace relayout::kernels {
namespace {

using reference::FloatElem;
using reference::QuantKind;

bool IsFloat(WeightType t) {
  return t == WeightType::kF32 || t == WeightType::kF16 || t == WeightType::kBF16;
}

FloatElem FloatElemOf(WeightType t) {
  return t == WeightType::kF32   ? FloatElem::kF32
         : t == WeightType::kF16 ? FloatElem::kF16
                                 : FloatElem::kBF16;
}

QuantKind QuantKindOf(WeightType t) {
  switch (t) {
    case WeightType::kQ8_0:
      return QuantKind::kQ8_0;
    case WeightType::kQ4_0:
      return QuantKind::kQ4_0;
    case WeightType::kQ5_0:
      return QuantKind::kQ5_0;
    case WeightType::kQ5_1:
      return QuantKind::kQ5_1;
    case WeightType::kIQ4_NL:
      return QuantKind::kIQ4_NL;
    case WeightType::kQ2_K:
      return QuantKind::kQ2_K;
    case WeightType::kQ3_K:
      return QuantKind::kQ3_K;
    case WeightType::kQ4_K:
      return QuantKind::kQ4_K;
    case WeightType::kQ5_K:
      return QuantKind::kQ5_K;
    case WeightType::kQ6_K:
      return QuantKind::kQ6_K;
    default:
      return QuantKind::kQ4_1;
  }
}

size_t ElemBytes(WeightType t) { return t == WeightType::kF32 ? 4 : 2; }

RowGroupParams RowGroupOf(const MatmulWeight& w) {
  return RowGroupParams{static_cast<size_t>(w.rows), static_cast<size_t>(w.cols), ElemBytes(w.type),
                        static_cast<size_t>(w.group_rows), static_cast<size_t>(w.k_block)};
}

QuantRowGroupParams QuantRowGroupOf(const MatmulWeight& w) {
  return QuantRowGroupParams{
      static_cast<size_t>(w.rows),
      static_cast<size_t>(w.cols / reference::QuantBlockElems(QuantKindOf(w.type))),
      reference::QuantBlockFormatOf(QuantKindOf(w.type)), static_cast<size_t>(w.group_rows)};
}

Bf16KPairParams KPairOf(const MatmulWeight& w) {
  return Bf16KPairParams{static_cast<size_t>(w.rows), static_cast<size_t>(w.cols),
                         static_cast<size_t>(w.group_rows)};
}

}  // namespace

bool QuantRowGroupFormatOf(WeightType type, QuantBlockFormat* format) {
  if (IsFloat(type)) return false;
  *format = reference::QuantBlockFormatOf(QuantKindOf(type));
  return true;
}

bool MatmulSupported(const MatmulWeight& w) { return w.data != nullptr && MatmulShapeSupported(w); }

bool MatmulShapeSupported(const MatmulWeight& w) {
  if (w.rows <= 0 || w.cols <= 0) return false;
  const bool quant = !IsFloat(w.type);
  const int block = quant ? reference::QuantBlockElems(QuantKindOf(w.type)) : 1;
  if (w.cols % block != 0) return false;
  switch (w.layout) {
    case WeightLayout::kRowMajor:
      return true;
    case WeightLayout::kRowGroup:
      return !quant && RowGroupParamsValid(RowGroupOf(w));
    case WeightLayout::kQuantRowGroup:
      return quant && QuantRowGroupParamsValid(QuantRowGroupOf(w));
    case WeightLayout::kBf16KPair:
      return w.type == WeightType::kBF16 && RowGroupParamsValid(Bf16KPairAsRowGroup(KPairOf(w)));
  }
  return false;
}

bool MatmulReference(const MatmulWeight& w, const float* x, int64_t tokens, float* y) {
  if (!MatmulSupported(w) || tokens < 1 || x == nullptr || y == nullptr) return false;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xt = x + t * w.cols;
    float* yt = y + t * w.rows;
    switch (w.layout) {
      case WeightLayout::kRowMajor:
        if (IsFloat(w.type)) {
          reference::GemvRowMajor(FloatElemOf(w.type), w.data, static_cast<size_t>(w.rows),
                                  static_cast<size_t>(w.cols), xt, yt);
        } else {
          reference::GemvGgufBlocks(
              QuantKindOf(w.type), w.data, static_cast<size_t>(w.rows),
              static_cast<size_t>(w.cols / reference::QuantBlockElems(QuantKindOf(w.type))), xt,
              yt);
        }
        break;
      case WeightLayout::kRowGroup:
        reference::GemvRowGroup(FloatElemOf(w.type), RowGroupOf(w), w.data, xt, yt);
        break;
      case WeightLayout::kQuantRowGroup:
        reference::GemvQuantRowGroup(QuantKindOf(w.type), QuantRowGroupOf(w), w.data, xt, yt);
        break;
      case WeightLayout::kBf16KPair:
        reference::GemvBf16KPair(KPairOf(w), w.data, xt, yt);
        break;
    }
  }
  return true;
}

}  // namespace relayout::kernels
