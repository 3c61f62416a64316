// Transpose strategies. Notation used throughout: the source is m = rows by
// n = cols, row-major; element (i, j) lives at linear index p = i * n + j and
// belongs at linear index j * m + i, which is (j, i) of the [n, m] result.
// docs/TRANSPOSE.md derives the CKG index formulas used below.
#include "kernels/cpu/transpose.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace relayout::kernels {
namespace {

// Element access policies. Elements are copied with memcpy so no pointer needs
// any alignment; with a constant size the copy compiles to one move.
template <size_t kBytes>
struct FixedElem {
  static constexpr size_t size() { return kBytes; }
  static void Copy(std::byte* dst, const std::byte* src) { std::memcpy(dst, src, kBytes); }
  static void Swap(std::byte* x, std::byte* y) {
    unsigned char t[kBytes];
    std::memcpy(t, x, kBytes);
    std::memcpy(x, y, kBytes);
    std::memcpy(y, t, kBytes);
  }
};

// Any other element size (for example a quantization block as one element).
struct DynamicElem {
  size_t bytes;
  size_t size() const { return bytes; }
  void Copy(std::byte* dst, const std::byte* src) const { std::memcpy(dst, src, bytes); }
  void Swap(std::byte* x, std::byte* y) const {
    unsigned char t[64];
    for (size_t off = 0; off < bytes; off += sizeof(t)) {
      const size_t len = std::min(sizeof(t), bytes - off);
      std::memcpy(t, x + off, len);
      std::memcpy(x + off, y + off, len);
      std::memcpy(y + off, t, len);
    }
  }
};

// Calls fn with the element policy for elem_bytes.
template <class Fn>
void DispatchElem(size_t elem_bytes, Fn&& fn) {
  switch (elem_bytes) {
    case 1:
      return fn(FixedElem<1>{});
    case 2:
      return fn(FixedElem<2>{});
    case 4:
      return fn(FixedElem<4>{});
    case 8:
      return fn(FixedElem<8>{});
    case 16:
      return fn(FixedElem<16>{});
    default:
      return fn(DynamicElem{elem_bytes});
  }
}

// Sets *total to rows * cols * elem_bytes; false on negative dimensions, zero
// element size or a product that overflows size_t.
bool TotalBytes(int64_t rows, int64_t cols, size_t elem_bytes, uint64_t* total) {
  if (rows < 0 || cols < 0 || elem_bytes == 0) return false;
  const uint64_t r = static_cast<uint64_t>(rows);
  const uint64_t c = static_cast<uint64_t>(cols);
  uint64_t elems = 0;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(r, c, &elems)) return false;
  if (__builtin_mul_overflow(elems, static_cast<uint64_t>(elem_bytes), &bytes)) return false;
  if (bytes > SIZE_MAX) return false;
  *total = bytes;
  return true;
}

// ---------------------------------------------------------------- out of place

// Square tiles keep both the rows read and the rows written within a few KiB;
// 32 elements of up to 8 bytes are 4 cache lines per tile row.
constexpr int64_t kTile = 32;

template <class E>
void OutOfPlace(const std::byte* src, std::byte* dst, int64_t m, int64_t n, E el) {
  const size_t e = el.size();
  for (int64_t i0 = 0; i0 < m; i0 += kTile) {
    const int64_t i1 = std::min(m, i0 + kTile);
    for (int64_t j0 = 0; j0 < n; j0 += kTile) {
      const int64_t j1 = std::min(n, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j) {
        // One destination row segment, written contiguously.
        std::byte* d = dst + static_cast<size_t>(j * m + i0) * e;
        const std::byte* s = src + static_cast<size_t>(i0 * n + j) * e;
        const size_t s_stride = static_cast<size_t>(n) * e;
        for (int64_t i = i0; i < i1; ++i) {
          el.Copy(d, s);
          d += e;
          s += s_stride;
        }
      }
    }
  }
}

// ------------------------------------------------------------ cycle following

// The element at linear index p of the [m, n] source belongs at
// (p % n) * m + p / n of the [n, m] result. Each cycle is rotated through the
// element at its smallest index by swaps, so no element-sized temporary is
// needed whatever elem_bytes is.
template <class E>
void CycleFollowing(std::byte* data, int64_t m, int64_t n, E el, std::byte* visited) {
  const size_t e = el.size();
  const uint64_t total = static_cast<uint64_t>(m) * static_cast<uint64_t>(n);
  const auto test = [visited](uint64_t p) {
    return (std::to_integer<unsigned>(visited[p >> 3]) >> (p & 7)) & 1u;
  };
  const auto mark = [visited](uint64_t p) { visited[p >> 3] |= std::byte{1} << (p & 7); };
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t um = static_cast<uint64_t>(m);
  for (uint64_t start = 0; start < total; ++start) {
    if (test(start)) continue;
    mark(start);
    std::byte* carrier = data + start * e;
    // carrier holds the element that came from index x; send it home.
    uint64_t x = start;
    for (;;) {
      const uint64_t home = (x % un) * um + x / un;
      if (home == start) break;
      el.Swap(carrier, data + home * e);
      mark(home);
      x = home;
    }
  }
}

// -------------------------------------------------------------- CKG in place

struct CkgShape {
  int64_t m, n;  // rows, cols of the source
  int64_t c;     // gcd(m, n)
  int64_t b;     // n / c
  int64_t w;     // columns per strip
};

int64_t StripColumns(int64_t n, size_t elem_bytes) {
  const int64_t per_strip = std::max<int64_t>(1, static_cast<int64_t>(kCkgStripBytes / elem_bytes));
  return std::min(n, per_strip);
}

// Copies columns [k0, k0 + wc) of all m rows into tmp as an [m, wc] block.
template <class E>
void StripOut(const std::byte* data, std::byte* tmp, const CkgShape& s, int64_t k0, int64_t wc,
              E el) {
  const size_t e = el.size();
  const size_t row_bytes = static_cast<size_t>(wc) * e;
  for (int64_t r = 0; r < s.m; ++r) {
    std::memcpy(tmp + static_cast<size_t>(r) * row_bytes,
                data + static_cast<size_t>(r * s.n + k0) * e, row_bytes);
  }
}

// Pass 1 (only when c > 1): rotate column j down by q(j) = j / b:
//   U(r, j) = A((r - q(j)) mod m, j).
template <class E>
void CkgRotateColumns(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  const size_t e = el.size();
  for (int64_t k0 = 0; k0 < s.n; k0 += s.w) {
    const int64_t wc = std::min(s.w, s.n - k0);
    StripOut(data, tmp, s, k0, wc, el);
    const int64_t q0 = k0 / s.b;
    const int64_t t0 = k0 % s.b;
    for (int64_t r = 0; r < s.m; ++r) {
      std::byte* out = data + static_cast<size_t>(r * s.n + k0) * e;
      int64_t q = q0;
      int64_t t = t0;
      for (int64_t w = 0; w < wc; ++w) {
        int64_t from = r - q;
        if (from < 0) from += s.m;
        el.Copy(out + static_cast<size_t>(w) * e, tmp + static_cast<size_t>(from * wc + w) * e);
        if (++t == s.b) {
          t = 0;
          ++q;
        }
      }
    }
  }
}

// Pass 2: in each row u, U(u, j) moves to column (j * m + i) mod n, where
// i = (u - j / b) mod m is the source row it came from. For a fixed row the
// destinations are a permutation of [0, n) (docs/TRANSPOSE.md).
template <class E>
void CkgShuffleRows(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  const size_t e = el.size();
  const size_t row_bytes = static_cast<size_t>(s.n) * e;
  const int64_t step = s.m % s.n;  // (j + 1) * m - j * m, mod n
  for (int64_t u = 0; u < s.m; ++u) {
    std::byte* row = data + static_cast<size_t>(u) * row_bytes;
    std::memcpy(tmp, row, row_bytes);
    int64_t jm = 0;  // j * m mod n
    const std::byte* in = tmp;
    for (int64_t q = 0; q < s.c; ++q) {
      int64_t i = u - q;
      if (i < 0) i += s.m;
      const int64_t i_mod_n = i % s.n;
      for (int64_t t = 0; t < s.b; ++t) {
        int64_t k = jm + i_mod_n;
        if (k >= s.n) k -= s.n;
        el.Copy(row + static_cast<size_t>(k) * e, in);
        in += e;
        jm += step;
        if (jm >= s.n) jm -= s.n;
      }
    }
  }
}

// Pass 3: the result's linear index p = r * n + k holds source (i, j) with
// i = p mod m, j = p / m, which passes 1-2 left in row (i + j / b) mod m of
// column k. So out(r, k) = T((p mod m + (p / m) / b) mod m, k), a gather within
// column k. (i, j / b, j mod b) are stepped incrementally: +n along r, +1
// along k.
template <class E>
void CkgShuffleColumns(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  const size_t e = el.size();
  const int64_t m = s.m;
  const int64_t b = s.b;
  const int64_t di = s.n % m;  // p += n: i advances by n mod m,
  const int64_t dj = s.n / m;  // j by n / m (plus the carry from i),
  const int64_t djq = dj / b;  // which splits into whole b-blocks
  const int64_t djr = dj % b;  // and a remainder.
  for (int64_t k0 = 0; k0 < s.n; k0 += s.w) {
    const int64_t wc = std::min(s.w, s.n - k0);
    StripOut(data, tmp, s, k0, wc, el);
    // State for p = r * n + k0.
    int64_t i0 = k0 % m;
    int64_t jq0 = (k0 / m) / b;
    int64_t jr0 = (k0 / m) % b;
    for (int64_t r = 0; r < m; ++r) {
      std::byte* out = data + static_cast<size_t>(r * s.n + k0) * e;
      int64_t i = i0;
      int64_t jq = jq0;
      int64_t jr = jr0;
      for (int64_t w = 0; w < wc; ++w) {
        int64_t from = i + jq;
        if (from >= m) from -= m;
        el.Copy(out + static_cast<size_t>(w) * e, tmp + static_cast<size_t>(from * wc + w) * e);
        if (++i == m) {
          i = 0;
          if (++jr == b) {
            jr = 0;
            ++jq;
          }
        }
      }
      i0 += di;
      int64_t carry = 0;
      if (i0 >= m) {
        i0 -= m;
        carry = 1;
      }
      jq0 += djq;
      jr0 += djr + carry;
      if (jr0 >= b) {
        jr0 -= b;
        ++jq0;
      }
    }
  }
}

template <class E>
void CkgInPlace(std::byte* data, int64_t m, int64_t n, E el, std::byte* tmp) {
  CkgShape s;
  s.m = m;
  s.n = n;
  s.c = std::gcd(m, n);
  s.b = n / s.c;
  s.w = StripColumns(n, el.size());
  if (s.c > 1) CkgRotateColumns(data, tmp, s, el);
  CkgShuffleRows(data, tmp, s, el);
  CkgShuffleColumns(data, tmp, s, el);
}

uint64_t SaturatingMul(uint64_t x, uint64_t y) {
  uint64_t out = 0;
  return __builtin_mul_overflow(x, y, &out) ? kTransposeScratchUnsatisfiable : out;
}

}  // namespace

uint64_t TransposeOutOfPlaceScratchBytes(int64_t rows, int64_t cols, size_t elem_bytes) {
  uint64_t total = 0;
  if (!TotalBytes(rows, cols, elem_bytes, &total)) return kTransposeScratchUnsatisfiable;
  return total;
}

uint64_t CycleFollowingScratchBytes(int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return kTransposeScratchUnsatisfiable;
  const uint64_t elems = SaturatingMul(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols));
  if (elems == kTransposeScratchUnsatisfiable) return elems;
  return elems / 8 + (elems % 8 != 0 ? 1 : 0);
}

uint64_t CkgScratchBytes(int64_t rows, int64_t cols, size_t elem_bytes) {
  uint64_t total = 0;
  if (!TotalBytes(rows, cols, elem_bytes, &total)) return kTransposeScratchUnsatisfiable;
  if (rows <= 1 || cols <= 1) return 0;
  const uint64_t strip = static_cast<uint64_t>(StripColumns(cols, elem_bytes));
  const uint64_t elems =
      std::max(static_cast<uint64_t>(cols), SaturatingMul(static_cast<uint64_t>(rows), strip));
  return SaturatingMul(elems, elem_bytes);
}

bool TransposeOutOfPlace(const void* src, void* dst, int64_t rows, int64_t cols,
                         size_t elem_bytes) {
  uint64_t total = 0;
  if (!TotalBytes(rows, cols, elem_bytes, &total)) return false;
  if (total == 0) return true;
  DispatchElem(elem_bytes, [&](auto el) {
    OutOfPlace(static_cast<const std::byte*>(src), static_cast<std::byte*>(dst), rows, cols, el);
  });
  return true;
}

bool TransposeCycleFollowing(void* data, int64_t rows, int64_t cols, size_t elem_bytes,
                             std::span<std::byte> visited_bitmap) {
  uint64_t total = 0;
  if (!TotalBytes(rows, cols, elem_bytes, &total)) return false;
  const uint64_t need = CycleFollowingScratchBytes(rows, cols);
  if (visited_bitmap.size() < need) return false;
  if (rows <= 1 || cols <= 1) return true;  // the bytes are already in place
  std::memset(visited_bitmap.data(), 0, need);
  DispatchElem(elem_bytes, [&](auto el) {
    CycleFollowing(static_cast<std::byte*>(data), rows, cols, el, visited_bitmap.data());
  });
  return true;
}

bool TransposeCkgInPlace(void* data, int64_t rows, int64_t cols, size_t elem_bytes,
                         std::span<std::byte> scratch) {
  const uint64_t need = CkgScratchBytes(rows, cols, elem_bytes);
  if (need == kTransposeScratchUnsatisfiable || scratch.size() < need) return false;
  if (rows <= 1 || cols <= 1) return true;
  DispatchElem(elem_bytes, [&](auto el) {
    CkgInPlace(static_cast<std::byte*>(data), rows, cols, el, scratch.data());
  });
  return true;
}

}  // namespace relayout::kernels
