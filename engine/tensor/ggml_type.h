// The tensor type ids of ggml (GGUF's ggml_type field) and their DTypes.
//
// Thread safety: pure functions over constant tables.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "engine/tensor/dtype.h"

namespace relayout {

// The DType of a ggml type id (0 F32, 1 F16, 2 Q4_0, ... 30 BF16); nullopt for
// ids without one (unknown ids, and ggml types such as IQ2_XXS that relayoutd
// does not read).
std::optional<DType> DTypeFromGgmlType(uint32_t ggml_type);
// The ggml id of a DType, for writers of GGUF files; nullopt for DTypes ggml
// lacks (U16, U32, U64, BOOL).
std::optional<uint32_t> GgmlTypeFromDType(DType dtype);
// ggml's name of a type id ("Q4_1", "IQ2_XXS"), for known ids whether
// supported or not; empty for ids ggml does not define.
std::string_view GgmlTypeName(uint32_t ggml_type);

}  // namespace relayout
