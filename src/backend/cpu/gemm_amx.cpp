// AMX-BF16 blocked GEMM (gemm_amx.h): capability check, activation split, weight-panel packing,
// the tile loop and the epilogue.
#include "backend/cpu/gemm_amx.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/avx512_common.h"  // and <immintrin.h>
#include "backend/cpu/gemm_packed.h"
#include "core/error.h"

#define FC_AMX \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")))
#define FC_AMX_INLINE                                                                           \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16"), \
                 always_inline)) inline

namespace fc::cpu::detail {
namespace {

// Weight rows per task panel (a multiple of 32: C is 2 × 16 weight rows wide) and the K block,
// at most (a multiple of 32): the packed panel is 64 × 512 bf16 = 64 KiB, a 32-token A block of
// hi + lo parts 64 KiB (L2: 2 MiB per core on Sapphire Rapids).
constexpr int64_t kPanelRows = 64;
constexpr int64_t kMaxKBlock = 512;
constexpr int64_t kTokPair = 32;  // tokens per C block (2 tiles of 16)
constexpr int64_t kTileBytes = 1024;
constexpr int kMaxParts = 3;  // bf16 parts per activation (gemm_amx.h)

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

// ---- capability --------------------------------------------------------------------------------

bool amx_bf16_check() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  const bool avx512 = ((b >> 16) & 1u) && ((b >> 30) & 1u) && ((b >> 31) & 1u);  // F, BW, VL
  const bool avx512dq = (b >> 17) & 1u;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (!__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) return false;
  const bool avx512bf16 = (a1 >> 5) & 1u;
  if (!(amx_bf16 && amx_tile && avx512 && avx512dq && avx512bf16)) return false;
  // Linux (5.16+) hands out the 8 KiB tile data state only on request, per process.
  constexpr long kArchReqXcompPerm = 0x1023, kArchGetXcompPerm = 0x1022;
  constexpr unsigned long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long mask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) != 0) return false;
  return (mask >> kXfeatureXtiledata) & 1u;
}

// ---- tile configuration ------------------------------------------------------------------------

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (16 tokens × 16 fp32), 4-5: B (16 pair rows × 64 bytes), 6-7: A (16 tokens × 32
// bf16): all 16 rows × 64 bytes.
FC_AMX void configure_tiles() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);
}

// ---- 16 × 16 dword transpose -------------------------------------------------------------------

// r[i] lane j -> r[j] lane i.
FC_AMX_INLINE void transpose16(__m512i (&r)[16]) {
  __m512i a[16], b[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // b[4j + c], 128-bit lane L: rows 4j .. 4j+3 of column 4L + c.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    b[4 * j + 0] = _mm512_unpacklo_epi64(a[4 * j], a[4 * j + 2]);
    b[4 * j + 1] = _mm512_unpackhi_epi64(a[4 * j], a[4 * j + 2]);
    b[4 * j + 2] = _mm512_unpacklo_epi64(a[4 * j + 1], a[4 * j + 3]);
    b[4 * j + 3] = _mm512_unpackhi_epi64(a[4 * j + 1], a[4 * j + 3]);
  }
  // Column 4L + c = lane L of b[c], b[4 + c], b[8 + c], b[12 + c]: a 4 × 4 transpose of lanes.
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m512i u0 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44);
    const __m512i u1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xEE);
    const __m512i u2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44);
    const __m512i u3 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xEE);
    r[c] = _mm512_shuffle_i32x4(u0, u2, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(u0, u2, 0xDD);
    r[8 + c] = _mm512_shuffle_i32x4(u1, u3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(u1, u3, 0xDD);
  }
}

// ---- activations: x -> hi, lo ------------------------------------------------------------------

// Rows [t0, t1) of x into the three bf16 parts (row stride lda elements each, columns [K, kp)
// zero): p[0] = bf16(x), p[1] = bf16(x - p[0]), p[2] = bf16(x - p[0] - p[1]) (both differences
// exact in fp32). Rows t >= T (padding up to the 32-token blocks) are zero.
FC_AMX void split_rows(const float* x, int64_t ldx, int64_t T, int64_t K, int64_t kp, int64_t t0,
                       int64_t t1, uint16_t* const (&parts)[kMaxParts], int nparts, int64_t lda) {
  for (int64_t t = t0; t < t1; ++t) {
    if (t >= T) {
      for (int i = 0; i < nparts; ++i) {
        std::memset(parts[i] + t * lda, 0, static_cast<size_t>(kp) * 2);
      }
      continue;
    }
    const float* xr = x + t * ldx;
    for (int64_t k = 0; k < kp; k += 32) {
      __m512 v[2];
#pragma GCC unroll 2
      for (int q = 0; q < 2; ++q) {
        const int64_t left = std::clamp<int64_t>(K - k - 16 * q, 0, 16);
        const __mmask16 m =
            left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
        v[q] = _mm512_maskz_loadu_ps(m, xr + std::min(k + 16 * q, K));
      }
#pragma GCC unroll 3
      for (int i = 0; i < nparts; ++i) {
        // vcvtne2ps2bf16 rounds to nearest even; the part's exact fp32 value is subtracted.
        const __m512i h16 = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v[1], v[0]));
        _mm512_storeu_si512(parts[i] + t * lda + k, h16);
        if (i + 1 == nparts) break;
        v[0] = _mm512_sub_ps(v[0], _mm512_castsi512_ps(_mm512_slli_epi32(
                                       _mm512_cvtepu16_epi32(_mm512_castsi512_si256(h16)), 16)));
        v[1] =
            _mm512_sub_ps(v[1], _mm512_castsi512_ps(_mm512_slli_epi32(
                                    _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h16, 1)), 16)));
      }
    }
  }
}

// ---- weights: row-major bf16 -> VNNI tiles -----------------------------------------------------

// src: rp rows × kcp bf16 (row stride ldd, rp % 16 == 0, kcp % 32 == 0) into tiles
// dst[(g·(kcp/32) + ch)·1 KiB]: row p of tile (g, ch) = for n < 16 the dword
// (src[16g + n, 32ch + 2p], src[16g + n, 32ch + 2p + 1]).
FC_AMX void pack_panel(const uint16_t* src, int64_t ldd, int64_t rp, int64_t kcp, uint8_t* dst) {
  const int64_t chunks = kcp / 32;
  for (int64_t g = 0; g < rp / 16; ++g) {
    for (int64_t ch = 0; ch < chunks; ++ch) {
      __m512i r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(src + (16 * g + i) * ldd + 32 * ch);
      transpose16(r);
      uint8_t* t = dst + (g * chunks + ch) * kTileBytes;
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) _mm512_store_si512(t + 64 * i, r[i]);
    }
  }
}

// ---- the tile loop -----------------------------------------------------------------------------

// C[16·TT tokens × 32 weight rows] (+)= A · B over `chunks` 32-column chunks (TT = 1 or 2 token
// tiles: a last block of 16 tokens, e.g. a MoE expert's, is not padded to 32). a[i]: part i's
// token row 0 of the block at the first chunk (row stride lda_bytes); b0 / b1: the first chunk's
// tile of weight rows 0-15 / 16-31 (tiles of one row group 1 KiB apart); c: fp32 [16·TT][ldc],
// loaded first when load_c.
template <int NP, int TT>
FC_AMX void tile_block(const uint16_t* const (&a)[kMaxParts], int64_t lda_bytes, const uint8_t* b0,
                       const uint8_t* b1, int64_t chunks, float* c, int64_t ldc_bytes,
                       bool load_c) {
  char* c0 = reinterpret_cast<char*>(c);
  char* c2 = c0 + 16 * ldc_bytes;  // tokens 16-31
  if (load_c) {
    _tile_loadd(0, c0, ldc_bytes);
    _tile_loadd(1, c0 + 64, ldc_bytes);
    if (TT == 2) {
      _tile_loadd(2, c2, ldc_bytes);
      _tile_loadd(3, c2 + 64, ldc_bytes);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    if (TT == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  }
  const char* p0[NP];
  for (int i = 0; i < NP; ++i) p0[i] = reinterpret_cast<const char*>(a[i]);
  const int64_t second = 16 * lda_bytes;  // tokens 16-31
  for (int64_t ch = 0; ch < chunks; ++ch) {
    _tile_loadd(4, b0 + ch * kTileBytes, 64);
    _tile_loadd(5, b1 + ch * kTileBytes, 64);
    // The largest part first, each part's products before the next part's loads.
#pragma GCC unroll 3
    for (int i = 0; i < NP; ++i) {
      _tile_loadd(6, p0[i] + 64 * ch, lda_bytes);
      if (TT == 2) _tile_loadd(7, p0[i] + second + 64 * ch, lda_bytes);
      _tile_dpbf16ps(0, 6, 4);
      _tile_dpbf16ps(1, 6, 5);
      if (TT == 2) {
        _tile_dpbf16ps(2, 7, 4);
        _tile_dpbf16ps(3, 7, 5);
      }
    }
  }
  _tile_stored(0, c0, ldc_bytes);
  _tile_stored(1, c0 + 64, ldc_bytes);
  if (TT == 2) {
    _tile_stored(2, c2, ldc_bytes);
    _tile_stored(3, c2 + 64, ldc_bytes);
  }
}

using TileBlockFn = void (*)(const uint16_t* const (&)[kMaxParts], int64_t, const uint8_t*,
                             const uint8_t*, int64_t, float*, int64_t, bool);

// [parts - 2][token tiles - 1]
constexpr TileBlockFn kTileBlocks[2][2] = {{&tile_block<2, 1>, &tile_block<2, 2>},
                                           {&tile_block<3, 1>, &tile_block<3, 2>}};

// y[t, n] (+)= scale · acc[t][n] for t < tn, n < rows.
FC_AMX void epilogue(const float* acc, int64_t lda, int64_t tn, int64_t rows, float scale, float* y,
                     int64_t ldy, bool add) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t t = 0; t < tn; ++t) {
    const float* a = acc + t * lda;
    float* yr = y + t * ldy;
    for (int64_t n = 0; n < rows; n += 16) {
      const int64_t left = std::min<int64_t>(16, rows - n);
      const __mmask16 m =
          left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
      __m512 v = _mm512_mul_ps(_mm512_loadu_ps(a + n), s);
      if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, yr + n));
      _mm512_mask_storeu_ps(yr + n, m, v);
    }
  }
}

// Per-thread buffers, reused across calls (a prefill makes hundreds; fresh multi-MiB
// allocations would page-fault each time). 64-byte aligned views.
template <typename T>
T* aligned_buffer(std::vector<uint8_t>& buf, int64_t count) {
  const size_t need = static_cast<size_t>(count) * sizeof(T) + 64;
  if (buf.size() < need) buf.resize(need);
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>(buf.data() + (64 - addr % 64) % 64);
}

struct TaskBuffers {
  std::vector<uint8_t> rowmajor, packed, acc;
};

// One task: weight rows [n0, n1) × tokens [t0, t1) (t0 a multiple of 32), every K block.
// Tokens are taken 32 at a time, a last 1-16 as one 16-token tile.
FC_AMX void run_task(const AmxGemmProblem& p, const uint16_t* const (&parts)[kMaxParts],
                     int64_t lda, int64_t kblock, const Bf16FillFn& fill, int64_t n0, int64_t n1,
                     int64_t t0, int64_t t1, TaskBuffers& tb) {
  const int64_t rows = n1 - n0, rp = round_up(rows, 32), tn = t1 - t0, tp = round_up(tn, 16);
  const int64_t kbp = round_up(kblock, 32);
  uint16_t* rm = aligned_buffer<uint16_t>(tb.rowmajor, rp * kbp);
  uint8_t* packed = aligned_buffer<uint8_t>(tb.packed, rp * kbp * 2);
  float* acc = aligned_buffer<float>(tb.acc, tp * rp);
  for (int64_t kb = 0; kb < p.K; kb += kblock) {
    const int64_t kc = std::min(kblock, p.K - kb), kcp = round_up(kc, 32), chunks = kcp / 32;
    fill(n0, rows, kb, kc, rm, kcp);
    for (int64_t r = 0; r < rp; ++r) {  // zero padding: columns past kc, rows past `rows`
      const int64_t from = r < rows ? kc : 0;
      if (from < kcp) std::memset(rm + r * kcp + from, 0, static_cast<size_t>(kcp - from) * 2);
    }
    pack_panel(rm, kcp, rp, kcp, packed);
    for (int64_t t = 0; t < tp; t += kTokPair) {
      const uint16_t* const a[kMaxParts] = {parts[0] + (t0 + t) * lda + kb,
                                            parts[1] + (t0 + t) * lda + kb,
                                            parts[2] + (t0 + t) * lda + kb};
      const TileBlockFn block = kTileBlocks[p.parts - 2][tp - t >= kTokPair ? 1 : 0];
      for (int64_t r = 0; r < rp; r += 32) {
        const uint8_t* b0 = packed + (r / 16) * chunks * kTileBytes;
        block(a, lda * 2, b0, b0 + chunks * kTileBytes, chunks, acc + t * rp + r, rp * 4, kb > 0);
      }
    }
  }
  epilogue(acc, rp, tn, rows, p.out_scale, p.y + t0 * p.ldy + n0, p.ldy, p.accumulate);
}

// The tasks [b, e) of one parallel_for range on this thread, between tile configuration and
// release.
FC_AMX void run_tasks(const AmxGemmProblem& p, const BlockedSplit& sp,
                      const uint16_t* const (&parts)[kMaxParts], int64_t lda,
                      const Bf16FillFn& fill, int64_t b, int64_t e) {
  thread_local TaskBuffers tb;
  configure_tiles();
  sp.for_runs(b, e, [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
    run_task(p, parts, lda, sp.kblock, fill, n0, n1, t0, t1, tb);
  });
  _tile_release();
}

FC_AMX void fill_nvfp4(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                       int64_t n0, int64_t rows, int64_t k0, int64_t kc, uint16_t* dst,
                       int64_t ldd) {
  // The 16 E2M1 values as bf16 (code bit 3 = sign), twice: vpermw reads index bits 4:0.
  const __m512i lut = _mm512_broadcast_i64x4(_mm256_setr_epi16(
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0, static_cast<int16_t>(0x8000),
      static_cast<int16_t>(0xBF00), static_cast<int16_t>(0xBF80), static_cast<int16_t>(0xBFC0),
      static_cast<int16_t>(0xC000), static_cast<int16_t>(0xC040), static_cast<int16_t>(0xC080),
      static_cast<int16_t>(0xC0C0)));
  const __m512 one256 = _mm512_set1_ps(256.0f);  // load_scales' e4m3 · 2⁸ correction, gs = 1
  const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* cr = codes + (n0 + r) * ld;
    const uint8_t* sr = scales + (n0 + r) * sld;
    uint16_t* d = dst + r * ldd;
    __m512 s16 = _mm512_setzero_ps();  // the block scales of columns [k & ~255, +256)
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t col = k0 + k, left = std::min<int64_t>(32, kc - k);  // 16 or 32
      const __mmask16 bm = left >= 32 ? __mmask16{0xFFFF} : __mmask16{0x00FF};
      if (k % 256 == 0) s16 = avx512::load_scales(sr + col / 16, (kc - k) / 16, one256);
      // dword p = code byte p: columns col + 2p (low nibble) and col + 2p + 1 (high nibble).
      const __m512i bytes = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(bm, cr + col / 2));
      // vpermw reads index bits 4:0 and the table holds the 16 values twice, so word 2p may keep
      // the byte's high nibble (bits 4-7, then 12-15) and word 2p + 1 gets it at bits 0-3.
      const __m512i idx = _mm512_or_si512(bytes, _mm512_slli_epi32(bytes, 12));
      const __m512i wv = _mm512_permutexvar_epi16(idx, lut);
      const __m512 sv = _mm512_permutexvar_ps(
          _mm512_add_epi32(halves, _mm512_set1_epi32(static_cast<int>(k % 256 / 16))), s16);
      // e2m1 · e4m3 has at most 6 significant bits: exact in bf16, so the fp32 products'
      // truncation to their high halves is exact.
      const __m512 even = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(wv, 16)), sv);
      const __m512 odd = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(wv, hi_mask)), sv);
      const __m512i out = _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(even), 16),
                                          _mm512_and_si512(_mm512_castps_si512(odd), hi_mask));
      _mm512_mask_storeu_epi32(d + k, bm, out);
    }
  }
}

}  // namespace

bool amx_bf16_usable() {
  static const bool ok = amx_bf16_check();
  return ok;
}

void amx_gemm(ThreadPool& pool, const AmxGemmProblem& p, int64_t k_align, int64_t threads,
              const Bf16FillFn& fill) {
  const int64_t align = std::max<int64_t>(32, round_up(k_align, 32));
  const BlockedSplit sp =
      split_blocked(p.T, p.N, p.K, kPanelRows, kTokPair, kMaxKBlock, align, threads);
  // Activations, once per call: the parts' rows of kp columns, stride lda (one extra 64-byte
  // line per row, so the 16 rows of a tile never share one L1 set at power-of-two K).
  const int64_t kp = round_up(p.K, 32), lda = kp + 32, tp = round_up(p.T, kTokPair);
  thread_local std::vector<uint8_t> act;
  FC_CHECK(p.parts == 2 || p.parts == 3, "amx_gemm: ", p.parts, " activation parts (2 or 3)");
  uint16_t* base = aligned_buffer<uint16_t>(act, p.parts * tp * lda);
  uint16_t* const parts[kMaxParts] = {base, base + tp * lda,
                                      p.parts == 3 ? base + 2 * tp * lda : nullptr};
  pool.parallel_for(tp, std::max<int64_t>(kTokPair, round_up((tp + threads - 1) / threads, 16)),
                    [&](int64_t b, int64_t e, int) {
                      split_rows(p.x, p.ldx, p.T, p.K, kp, b, e, parts, p.parts, lda);
                    });
  const uint16_t* const cparts[kMaxParts] = {parts[0], parts[1], parts[2]};
  pool.parallel_for(sp.tasks, sp.grain,
                    [&](int64_t b, int64_t e, int) { run_tasks(p, sp, cparts, lda, fill, b, e); });
}

void amx_fill_bf16(const uint16_t* w, int64_t ld, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                   uint16_t* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * ldd, w + (n0 + r) * ld + k0, static_cast<size_t>(kc) * 2);
  }
}

void amx_fill_nvfp4(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                    int64_t n0, int64_t rows, int64_t k0, int64_t kc, uint16_t* dst, int64_t ldd) {
  fill_nvfp4(codes, ld, scales, sld, n0, rows, k0, kc, dst, ldd);
}

}  // namespace fc::cpu::detail
