// Transpose strategies. Notation used throughout: the source is m = rows by
// n = cols, row-major; element (i, j) lives at linear index p = i * n + j and
// belongs at linear index j * m + i, which is (j, i) of the [n, m] result.
// docs/TRANSPOSE.md derives the CKG index formulas used below.
#include "kernels/cpu/layout/transpose.h"

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

constexpr int64_t kPrefetchRows = 16;

// Strips per column pass held in scratch at once: the one being written back
// and the next one being read, so both ride on one sweep down the rows.
int64_t StripBuffers(int64_t n, int64_t w) { return n > w ? 2 : 1; }

// Prefetches [p, p + len), one request per cache line.
inline void Prefetch(const std::byte* p, size_t len) {
  for (size_t off = 0; off < len; off += 64) __builtin_prefetch(p + off);
}

// Drives one column pass: every strip of w columns is copied into scratch as
// an [m, wc] block, then gather.Row(r, out, block) writes row r of the strip
// back from the block. Strip k's write-back and strip k + 1's copy share one
// sweep down the rows, so each row's page is visited once per strip; rows are
// on different pages, which hardware prefetchers do not cross, hence the
// software prefetch kPrefetchRows ahead.
template <class E, class MakeGather>
void ColumnPass(std::byte* data, std::byte* tmp, const CkgShape& s, E el,
                const MakeGather& make_gather) {
  const size_t e = el.size();
  const size_t stride = static_cast<size_t>(s.n) * e;
  std::byte* buf[2] = {tmp, tmp + static_cast<size_t>(s.m * s.w) * e};
  // Strip 0 alone.
  {
    const int64_t wc = std::min(s.w, s.n);
    const std::byte* in = data;
    for (int64_t r = 0; r < s.m; ++r, in += stride) {
      if (r + kPrefetchRows < s.m) Prefetch(in + kPrefetchRows * stride, wc * e);
      std::memcpy(buf[0] + static_cast<size_t>(r * wc) * e, in, wc * e);
    }
  }
  int which = 0;
  for (int64_t k0 = 0; k0 < s.n; k0 += s.w) {
    const int64_t wc = std::min(s.w, s.n - k0);
    const int64_t k1 = k0 + s.w;
    const int64_t wn = k1 < s.n ? std::min(s.w, s.n - k1) : 0;
    const std::byte* block = buf[which];
    std::byte* next = buf[which ^ 1];
    auto gather = make_gather(k0, wc);
    std::byte* out = data + static_cast<size_t>(k0) * e;
    for (int64_t r = 0; r < s.m; ++r, out += stride) {
      if (r + kPrefetchRows < s.m) Prefetch(out + kPrefetchRows * stride, (wc + wn) * e);
      gather.Row(r, out, block);
      if (wn > 0) std::memcpy(next + static_cast<size_t>(r * wn) * e, out + wc * e, wn * e);
    }
    which ^= 1;
  }
}

// Pass 1 (only when c > 1): rotate column j down by q(j) = j / b:
//   U(r, j) = A((r - q(j)) mod m, j).
template <class E>
struct RotateGather {
  E el;
  const CkgShape* s;
  int64_t wc, q0, t0;
  void Row(int64_t r, std::byte* out, const std::byte* block) const {
    const size_t e = el.size();
    int64_t q = q0;
    int64_t t = t0;
    for (int64_t w = 0; w < wc; ++w) {
      int64_t from = r - q;
      if (from < 0) from += s->m;
      el.Copy(out + static_cast<size_t>(w) * e, block + static_cast<size_t>(from * wc + w) * e);
      if (++t == s->b) {
        t = 0;
        ++q;
      }
    }
  }
};

template <class E>
void CkgRotateColumns(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  ColumnPass(data, tmp, s, el, [&](int64_t k0, int64_t wc) {
    return RotateGather<E>{el, &s, wc, k0 / s.b, k0 % s.b};
  });
}

// Pass 2: in each row u, U(u, j) moves to column (j * m + i) mod n, where
// i = (u - j / b) mod m is the source row it came from. For a fixed row the
// destinations are a permutation of [0, n) (docs/TRANSPOSE.md).
template <class E>
void CkgShuffleRows(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  const size_t e = el.size();
  const size_t row_bytes = static_cast<size_t>(s.n) * e;
  const int64_t step = s.m % s.n;  // (j + 1) * m - j * m, mod n
  const int64_t last_mod_n = (s.m - 1) % s.n;
  for (int64_t u = 0; u < s.m; ++u) {
    std::byte* row = data + static_cast<size_t>(u) * row_bytes;
    std::memcpy(tmp, row, row_bytes);
    if (s.b == 1) {
      // n divides m (square matrices among them): k = (u - j) mod n, so the
      // row is reversed and rotated; gather it in two runs.
      const int64_t pivot = u % s.n;
      for (int64_t k = 0; k <= pivot; ++k) {
        el.Copy(row + static_cast<size_t>(k) * e, tmp + static_cast<size_t>(pivot - k) * e);
      }
      for (int64_t k = pivot + 1; k < s.n; ++k) {
        el.Copy(row + static_cast<size_t>(k) * e, tmp + static_cast<size_t>(pivot - k + s.n) * e);
      }
      continue;
    }
    int64_t jm = 0;  // j * m mod n
    const std::byte* in = tmp;
    // i = (u - q) mod m and i mod n, stepped down with q (no division per q:
    // with b == 1 there is one q per element).
    int64_t i = u;
    int64_t i_mod_n = u % s.n;
    for (int64_t q = 0; q < s.c; ++q) {
      if (q > 0) {
        if (i == 0) {
          i = s.m - 1;
          i_mod_n = last_mod_n;
        } else {
          --i;
          i_mod_n = i_mod_n == 0 ? s.n - 1 : i_mod_n - 1;
        }
      }
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
// column k. (i, j / b, j mod b) are stepped incrementally: +n along r (rows
// come in order), +1 along k.
template <class E>
struct ShuffleGather {
  E el;
  const CkgShape* s;
  int64_t wc;
  int64_t i0, jq0, jr0;  // for p = r * n + k0 of the next row
  int64_t di, djq, djr;  // n mod m, (n / m) / b, (n / m) mod b
  void Row(int64_t /*r*/, std::byte* out, const std::byte* block) {
    const size_t e = el.size();
    const int64_t m = s->m;
    const int64_t b = s->b;
    int64_t i = i0;
    int64_t jq = jq0;
    int64_t jr = jr0;
    for (int64_t w = 0; w < wc; ++w) {
      int64_t from = i + jq;
      if (from >= m) from -= m;
      el.Copy(out + static_cast<size_t>(w) * e, block + static_cast<size_t>(from * wc + w) * e);
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
};

template <class E>
void CkgShuffleColumns(std::byte* data, std::byte* tmp, const CkgShape& s, E el) {
  const int64_t dj = s.n / s.m;
  ColumnPass(data, tmp, s, el, [&](int64_t k0, int64_t wc) {
    return ShuffleGather<E>{
        el, &s, wc, k0 % s.m, (k0 / s.m) / s.b, (k0 / s.m) % s.b, s.n % s.m, dj / s.b, dj % s.b};
  });
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
  const int64_t w = StripColumns(cols, elem_bytes);
  const uint64_t strip = static_cast<uint64_t>(StripBuffers(cols, w) * w);
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
