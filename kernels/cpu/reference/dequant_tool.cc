// dequant_tool: the reference dequantizers as a filter, for checks from other
// languages (dequant_gguf_check.py compares it with the PyPI gguf package).
//
//   dequant_tool <dtype> < blocks > floats
//
// <dtype> is a GGUF type name (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K). stdin holds whole blocks of that
// type back to back, in file layout; stdout gets one little-endian float32 per
// element. Exit status 2 for a usage error, 1 for input that is not whole
// blocks or an I/O error.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "kernels/cpu/reference/dequant.h"
#include "kernels/quant_format.h"

namespace {

namespace ref = relayout::kernels::reference;
namespace k = relayout::kernels;

// The float32 written out is the host's: the block formats and this output
// are little-endian.
static_assert(std::endian::native == std::endian::little, "GGUF blocks are little-endian");

struct Type {
  std::string_view name;
  int block_elems;
  size_t block_bytes;
  ref::DequantizeRowFn dequantize;
};

constexpr Type kTypes[] = {
    {"F32", 1, 4, ref::DequantizeRowF32},
    {"F16", 1, 2, ref::DequantizeRowF16},
    {"BF16", 1, 2, ref::DequantizeRowBF16},
    {"Q8_0", k::kQK, sizeof(k::BlockQ8_0), ref::DequantizeRowQ8_0},
    {"Q4_0", k::kQK, sizeof(k::BlockQ4_0), ref::DequantizeRowQ4_0},
    {"Q4_1", k::kQK, sizeof(k::BlockQ4_1), ref::DequantizeRowQ4_1},
    {"Q5_0", k::kQK, sizeof(k::BlockQ5_0), ref::DequantizeRowQ5_0},
    {"Q5_1", k::kQK, sizeof(k::BlockQ5_1), ref::DequantizeRowQ5_1},
    {"IQ4_NL", k::kQK, sizeof(k::BlockIQ4_NL), ref::DequantizeRowIQ4_NL},
    {"Q2_K", k::kQKK, k::kBlockQ2_KBytes, ref::DequantizeRowQ2_K},
    {"Q3_K", k::kQKK, k::kBlockQ3_KBytes, ref::DequantizeRowQ3_K},
    {"Q4_K", k::kQKK, k::kBlockQ4_KBytes, ref::DequantizeRowQ4_K},
    {"Q5_K", k::kQKK, k::kBlockQ5_KBytes, ref::DequantizeRowQ5_K},
    {"Q6_K", k::kQKK, k::kBlockQ6_KBytes, ref::DequantizeRowQ6_K},
};

}  // namespace

int main(int argc, char** argv) {
  const Type* type = nullptr;
  if (argc == 2) {
    for (const Type& t : kTypes) {
      if (t.name == argv[1]) type = &t;
    }
  }
  if (type == nullptr) {
    std::fprintf(stderr, "usage: %s <dtype> < blocks > float32s\ndtypes:", argv[0]);
    for (const Type& t : kTypes) {
      std::fprintf(stderr, " %.*s", static_cast<int>(t.name.size()), t.name.data());
    }
    std::fprintf(stderr, "\n");
    return 2;
  }

  std::vector<unsigned char> in;
  unsigned char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, stdin)) > 0) in.insert(in.end(), buf, buf + got);
  if (std::ferror(stdin)) {
    std::perror("dequant_tool: reading stdin");
    return 1;
  }
  if (in.size() % type->block_bytes != 0) {
    std::fprintf(stderr,
                 "dequant_tool: %zu bytes of input is not a whole number of %zu-byte %s blocks\n",
                 in.size(), type->block_bytes, argv[1]);
    return 1;
  }

  const int64_t n = static_cast<int64_t>(in.size() / type->block_bytes) * type->block_elems;
  std::vector<float> out(static_cast<size_t>(n));
  type->dequantize(in.data(), out.data(), n);
  if (std::fwrite(out.data(), sizeof(float), out.size(), stdout) != out.size() ||
      std::fflush(stdout) != 0) {
    std::perror("dequant_tool: writing stdout");
    return 1;
  }
  return 0;
}
