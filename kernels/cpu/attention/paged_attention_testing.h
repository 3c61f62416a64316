// Test hook: run PagedAttention's tile of one ISA, so every compiled path is
// checked on a machine that would otherwise always pick the widest one.
#pragma once

namespace relayout::kernels {

enum class AttentionIsa { kAuto, kPortable, kAvx2, kAvx512 };

// False (and nothing changes) when this build or CPU cannot run `isa`.
bool SetAttentionIsaForTesting(AttentionIsa isa);

}  // namespace relayout::kernels
