// Binning and compositing of the live CPU rasteriser (render/cpu_tiles.py), hand-vectorised with GCC vector
// extensions: the same source compiles to AVX2 + FMA (-mavx2 -mfma) where the CPU has them and to baseline SSE2
// otherwise. Built and loaded by render/raster_c.py (ctypes); the image formation is reference_torch's.
//
// Tiles are 8 x 16 pixels (TW x TH). Each tile's Gaussians (depth order) are composited pixel-major, two rows at a
// time: the tile's list is first compacted to the Gaussians whose pixel box meets the row pair, then for each of
// them one 8-lane vector per row evaluates opacity * exp(-sigma) and blends it, with the transmittance T and the
// colour sums of the 16 pixels held in registers (two independent dependency chains). A pixel stops (T := 0,
// nothing more is added) before the Gaussian that would take its transmittance to <= T_MIN, as in the reference;
// every 8 Gaussians the pair ends when all 16 of its pixels have stopped.
// Colours are stored less the background: sum_i w_i (c_i - bg) + bg = sum_i w_i c_i + T_final bg, since
// sum_i w_i = 1 - T_final; so the 8-bit path needs no final T.

#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

enum { TW = 8, TH = 16, TW_BITS = 3, TH_BITS = 4, REC_IN = 11, REC = 12 };
static const float ALPHA_MIN = 1.0f / 255.0f;
static const float T_MIN = 1e-4f;

static inline v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }

// exp(x) for x <= 0: exp(x/32)^32 with a degree-3 Taylor polynomial, x clamped at -6 (exp(-6) < 1/255, so a clamped
// value stays below the alpha threshold); absolute error < 7e-6 (the numba kernel's _exp_neg, same formula).
static inline v8f exp_neg(v8f x) {
    v8f lo = splat(-6.0f);
    x = x < lo ? lo : x;
    v8f y = x * splat(1.0f / 32.0f);
    v8f p = splat(1.0f) + y * (splat(1.0f) + y * (splat(0.5f) + y * splat(1.0f / 6.0f)));
    p = p * p;
    p = p * p;
    p = p * p;
    p = p * p;
    return p * p;
}

static inline bool any_positive(v8f a, v8f b) {
#if defined(__AVX__)
    __m256 z = _mm256_setzero_ps();
    __m256 m = _mm256_or_ps(_mm256_cmp_ps((__m256)a, z, _CMP_GT_OQ), _mm256_cmp_ps((__m256)b, z, _CMP_GT_OQ));
    return _mm256_movemask_ps(m) != 0;
#else
    v8i m = (a > splat(0.0f)) | (b > splat(0.0f));
    int64_t w[4];
    memcpy(w, &m, sizeof w);
    return (w[0] | w[1] | w[2] | w[3]) != 0;
#endif
}

// The rows [*vlo, *vhi] of column strip [xa, xb] (pixel centres) that the ellipse sigma <= s of record q (srec
// layout) meets, clipped to the box rows [v0, v1]; empty when *vlo > *vhi. sigma = A dx^2 / 2 + B dx dy + C dy^2 / 2
// with (dx, dy) = centre - pixel: on a column dx the ellipse spans dy = (-B dx +- sqrt(2 C s - det dx^2)) / C; its
// top (bottom) point is at dy = +-sqrt(2 A s / det), dx = -+B dy / A. Widened by 0.01 px (float rounding).
static inline void strip_rows(const float *q, float s, float xa, float xb, int32_t v0, int32_t v1, int32_t *vlo,
                              int32_t *vhi) {
    float A = 2.0f * q[2], B = q[3], C = 2.0f * q[4];
    float det = A * C - B * B;
    float dxa = q[0] - xb, dxb = q[0] - xa;  // dx over the strip, increasing
    float R = sqrtf(2.0f * C * s / det);     // the ellipse's dx half-width
    dxa = dxa < -R ? -R : dxa;
    dxb = dxb > R ? R : dxb;
    if (dxa > dxb + 0.01f) {
        *vlo = 1;
        *vhi = 0;
        return;
    }
    float dyt = sqrtf(2.0f * A * s / det), dxt = -B * dyt / A;
    float top, bot;
    {
        float d = dxt < dxa ? dxa : (dxt > dxb ? dxb : dxt);
        float disc = 2.0f * C * s - det * d * d;
        top = (-B * d + sqrtf(disc > 0.0f ? disc : 0.0f)) / C;
        d = -dxt < dxa ? dxa : (-dxt > dxb ? dxb : -dxt);
        disc = 2.0f * C * s - det * d * d;
        bot = (-B * d - sqrtf(disc > 0.0f ? disc : 0.0f)) / C;
    }
    float lo = q[1] - top - 0.01f, hi = q[1] - bot + 0.01f;  // rows v = my - dy
    int32_t a = lo <= (float)v0 ? v0 : (int32_t)ceilf(lo);
    int32_t b = hi >= (float)v1 ? v1 : (int32_t)floorf(hi);
    *vlo = a;
    *vhi = b;
}

extern "C" {

// The visible Gaussians in depth order: srec [M, REC] (mx, my, A/2, B, C/2, log opacity, r - bg_r, g - bg_g,
// b - bg_b, depth, ln(255 opacity), 0) from rec [N, REC_IN] (cpu_tiles._project's records), sbox [M, 4] their pixel
// boxes; counts into tile_start [n_tiles + 1] (a prefix sum on return) the tiles each Gaussian meets: per 8-pixel
// column strip of its box, the tiles of the rows its ellipse meets there. Returns the number of entries.
int64_t rs_gather_count(const float *rec, const int32_t *box, const int32_t *order, int32_t m, const float *bg,
                        int32_t n_tx, int32_t n_ty, float *srec, int32_t *sbox, int32_t *tile_start) {
    int32_t n_tiles = n_tx * n_ty;
    memset(tile_start, 0, sizeof(int32_t) * (size_t)(n_tiles + 1));
    for (int32_t j = 0; j < m; j++) {
        const float *r = rec + (int64_t)order[j] * REC_IN;
        const int32_t *b = box + (int64_t)order[j] * 4;
        float *s = srec + (int64_t)j * REC;
        s[0] = r[0];
        s[1] = r[1];
        s[2] = 0.5f * r[2];
        s[3] = r[3];
        s[4] = 0.5f * r[4];
        s[5] = r[5];
        s[6] = r[7] - bg[0];
        s[7] = r[8] - bg[1];
        s[8] = r[9] - bg[2];
        s[9] = r[10];
        s[10] = r[6];
        s[11] = 0.0f;
        int32_t *sb = sbox + (int64_t)j * 4;
        sb[0] = b[0];
        sb[1] = b[1];
        sb[2] = b[2];
        sb[3] = b[3];
        for (int32_t tx = b[0] >> TW_BITS; tx <= (b[1] >> TW_BITS); tx++) {
            int32_t vlo, vhi;
            strip_rows(s, r[6], (float)(tx * TW), (float)(tx * TW + TW - 1), b[2], b[3], &vlo, &vhi);
            for (int32_t ty = vlo >> TH_BITS; vlo <= vhi && ty <= (vhi >> TH_BITS); ty++)
                tile_start[ty * n_tx + tx + 1]++;
        }
    }
    for (int32_t t = 0; t < n_tiles; t++) tile_start[t + 1] += tile_start[t];
    return tile_start[n_tiles];
}

// tile_list [entries, 2]: each tile's (depth rank, rows) pairs in increasing rank, rows = first | last << 16 (the
// rows of the tile's column strip that the ellipse meets); fill [n_tiles] is scratch.
void rs_fill(const float *srec, const int32_t *sbox, int32_t m, int32_t n_tx, const int32_t *tile_start,
             int32_t n_tiles, int32_t *tile_list, int32_t *fill) {
    memcpy(fill, tile_start, sizeof(int32_t) * (size_t)n_tiles);
    for (int32_t j = 0; j < m; j++) {
        const int32_t *b = sbox + (int64_t)j * 4;
        const float *s = srec + (int64_t)j * REC;
        for (int32_t tx = b[0] >> TW_BITS; tx <= (b[1] >> TW_BITS); tx++) {
            int32_t vlo, vhi;
            strip_rows(s, s[10], (float)(tx * TW), (float)(tx * TW + TW - 1), b[2], b[3], &vlo, &vhi);
            for (int32_t ty = vlo >> TH_BITS; vlo <= vhi && ty <= (vhi >> TH_BITS); ty++) {
                int32_t *e = tile_list + 2 * (int64_t)fill[ty * n_tx + tx]++;
                e[0] = j;
                e[1] = vlo | (vhi << 16);
            }
        }
    }
}

}  // extern "C"

static inline uint8_t to_u8(float v) {
    v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    return (uint8_t)(v * 255.0f + 0.5f);
}

#ifdef RS_STATS
extern "C" { int64_t rs_stats[4]; }
#endif

// One row pair (rows ya, ya + 1) of the tile at column x0 over its compacted Gaussians idx [n].
template <bool FLOAT_OUT>
static inline void composite_pair(const float *srec, const int32_t *idx, int32_t n, int32_t x0, int32_t ya,
                                  int32_t width, int32_t height, const float *bg, uint8_t *out_u8, float *out_rgb,
                                  float *out_alpha, float *out_depth) {
    const v8f lane = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f};
    const v8f zero = splat(0.0f), one = splat(1.0f);
    v8f T0 = one, T1 = one;
    v8f r0 = zero, g0 = zero, b0 = zero, r1 = zero, g1 = zero, b1 = zero;
    v8f a0 = zero, a1 = zero, z0 = zero, z1 = zero;  // alpha and depth sums (float output only)
    const float fx0 = (float)x0, fya = (float)ya;
    for (int32_t k0 = 0; k0 < n; k0 += 8) {
        int32_t k1 = k0 + 8 < n ? k0 + 8 : n;
#ifdef RS_STATS
        rs_stats[0] += k1 - k0;
#endif
        for (int32_t k = k0; k < k1; k++) {
            const float *q = srec + (int64_t)idx[k] * REC;
            v8f dx = splat(q[0] - fx0) - lane;
            float dy0 = q[1] - fya, dy1 = dy0 - 1.0f;
            v8f hA = splat(q[2]);
            float B = q[3], hC = q[4], lo = q[5];
            v8f s0 = hA * dx + splat(B * dy0);
            v8f s1 = hA * dx + splat(B * dy1);
            v8f p0 = splat(lo - hC * dy0 * dy0) - s0 * dx;
            v8f p1 = splat(lo - hC * dy1 * dy1) - s1 * dx;
            v8f e0 = exp_neg(p0), e1 = exp_neg(p1);
            const v8f amax = splat(0.999f), amin = splat(ALPHA_MIN), tmin = splat(T_MIN);
            e0 = e0 < amax ? e0 : amax;
            e1 = e1 < amax ? e1 : amax;
            e0 = e0 >= amin ? e0 : zero;
            e1 = e1 >= amin ? e1 : zero;
            v8f n0 = T0 * (one - e0), n1 = T1 * (one - e1);
            v8i ok0 = n0 > tmin, ok1 = n1 > tmin;
            v8f w0 = ok0 ? e0 * T0 : zero;
            v8f w1 = ok1 ? e1 * T1 : zero;
            T0 = ok0 ? n0 : zero;
            T1 = ok1 ? n1 : zero;
            v8f cr = splat(q[6]), cg = splat(q[7]), cb = splat(q[8]);
            r0 += w0 * cr;
            g0 += w0 * cg;
            b0 += w0 * cb;
            r1 += w1 * cr;
            g1 += w1 * cg;
            b1 += w1 * cb;
            if (FLOAT_OUT) {
                v8f z = splat(q[9]);
                a0 += w0;
                a1 += w1;
                z0 += w0 * z;
                z1 += w1 * z;
            }
        }
        if (!any_positive(T0, T1)) break;  // all 16 pixels have stopped
    }
    float rr[2][8], gg[2][8], bb[2][8], aa[2][8], zz[2][8];
    memcpy(rr[0], &r0, 32);
    memcpy(rr[1], &r1, 32);
    memcpy(gg[0], &g0, 32);
    memcpy(gg[1], &g1, 32);
    memcpy(bb[0], &b0, 32);
    memcpy(bb[1], &b1, 32);
    if (FLOAT_OUT) {
        memcpy(aa[0], &a0, 32);
        memcpy(aa[1], &a1, 32);
        memcpy(zz[0], &z0, 32);
        memcpy(zz[1], &z1, 32);
    }
    int32_t nu = width - x0 < TW ? width - x0 : TW;
    for (int32_t h = 0; h < 2 && ya + h < height; h++) {
        int64_t row = (int64_t)(ya + h) * width + x0;
        for (int32_t i = 0; i < nu; i++) {
            float r = rr[h][i] + bg[0], g = gg[h][i] + bg[1], b = bb[h][i] + bg[2];
            if (FLOAT_OUT) {
                float *o = out_rgb + 3 * (row + i);
                o[0] = r;
                o[1] = g;
                o[2] = b;
                float a = aa[h][i];
                out_alpha[row + i] = a;
                out_depth[row + i] = zz[h][i] / (a > 1e-10f ? a : 1e-10f);
            } else {
                uint8_t *o = out_u8 + 3 * (row + i);
                o[0] = to_u8(r);
                o[1] = to_u8(g);
                o[2] = to_u8(b);
            }
        }
    }
}

template <bool FLOAT_OUT>
static void raster(const float *srec, const int32_t *sbox, const int32_t *tile_start, const int32_t *tile_list,
                   int32_t width, int32_t height, int32_t n_tx, int32_t n_tiles, const float *bg, uint8_t *out_u8,
                   float *out_rgb, float *out_alpha, float *out_depth, int32_t *next_tile, int32_t chunk) {
    int32_t cap = 0;
    int32_t *idx = nullptr;
    for (;;) {
        int32_t t0 = __atomic_fetch_add(next_tile, chunk, __ATOMIC_RELAXED);
        if (t0 >= n_tiles) break;
        int32_t t1 = t0 + chunk < n_tiles ? t0 + chunk : n_tiles;
        for (int32_t t = t0; t < t1; t++) {
            int32_t x0 = (t % n_tx) * TW, y0 = (t / n_tx) * TH;
            int32_t j0 = tile_start[t], j1 = tile_start[t + 1];
            if (j1 - j0 > cap) {
                cap = 2 * (j1 - j0);
                free(idx);
                idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)cap);
                if (!idx) return;  // the caller sees next_tile's count fall short (raster_c: MemoryError)
            }
            for (int32_t ya = y0; ya < y0 + TH && ya < height; ya += 2) {
                int32_t n = 0;
                for (int32_t j = j0; j < j1; j++) {  // branch-free compaction: ellipses that meet rows ya, ya + 1
                    const int32_t *e = tile_list + 2 * (int64_t)j;
                    idx[n] = e[0];
                    n += ((e[1] & 0xffff) <= ya + 1) & ((e[1] >> 16) >= ya);
                }
#ifdef RS_STATS
                rs_stats[1] += n;
#endif
                composite_pair<FLOAT_OUT>(srec, idx, n, x0, ya, width, height, bg, out_u8, out_rgb, out_alpha,
                                          out_depth);
            }
        }
        __atomic_fetch_add(next_tile + 1, t1 - t0, __ATOMIC_RELAXED);  // tiles done
    }
    free(idx);
}

extern "C" {

// Composite tiles until none are left: each call (one per thread) takes `chunk` tiles at a time from the counter
// next_tile[0] and adds the tiles it finished to next_tile[1]. Writes out_u8 [H, W, 3] when float_out is 0, else
// out_rgb [H, W, 3], out_alpha [H, W], out_depth [H, W].
void rs_raster(const float *srec, const int32_t *sbox, const int32_t *tile_start, const int32_t *tile_list,
               int32_t width, int32_t height, int32_t n_tx, int32_t n_tiles, const float *bg, int32_t float_out,
               uint8_t *out_u8, float *out_rgb, float *out_alpha, float *out_depth, int32_t *next_tile,
               int32_t chunk) {
    if (float_out)
        raster<true>(srec, sbox, tile_start, tile_list, width, height, n_tx, n_tiles, bg, out_u8, out_rgb, out_alpha,
                     out_depth, next_tile, chunk);
    else
        raster<false>(srec, sbox, tile_start, tile_list, width, height, n_tx, n_tiles, bg, out_u8, out_rgb,
                      out_alpha, out_depth, next_tile, chunk);
}

// The vector width and instruction set this library was compiled for (for the log).
const char *rs_isa(void) {
#if defined(__AVX2__) && defined(__FMA__)
    return "avx2+fma";
#elif defined(__AVX__)
    return "avx";
#else
    return "baseline";
#endif
}

}  // extern "C"
