// Binning and compositing of the live CPU rasteriser (render/cpu_tiles.py), hand-vectorised with GCC vector
// extensions: the same source compiles to AVX2 + FMA (-mavx2 -mfma) where the CPU has them and to baseline SSE2
// otherwise. Built and loaded by render/raster_c.py (ctypes); the image formation is reference_torch's.
//
// Projection (rs_project, degree-0 colours; cpu_tiles._project + rs_records otherwise): 8 Gaussians per vector, the
// reference's float32 formulas, writing the records the binning and the blend read (write_record).
// Binning (rs_bin): in depth order, each Gaussian is listed in the 8-column strips (SW) of its box that its ellipse
// (opacity * exp(-sigma) >= 1/255) really meets, with the rows it meets in the strip's left and right 4-column
// halves (strip_rows: exact, 8 half strips per vector); a counting sort by strip (~2.4 entries per Gaussian).
// Compositing (rs_raster, parallel over strips): Gaussian-major within a strip: the transmittance T and the colour
// sums of every 4 x 2 pixel group (one 8-lane vector each) of the strip sit in a per-thread array (in L2), and each
// entry, in depth order, is blended into the groups of the rows it meets in each 4-column half (no per-group lists);
// down a half the exponent is a quadratic in the row pair, stepped by forward differences (two adds per group).
// alpha = min(0.999, opacity 2^x) with 2^x built from the exponent bits and a degree-3 polynomial (3 multiply-adds);
// a pixel skips alpha < 1/255 and stops (T := 0, nothing more added) before the Gaussian that would take its
// transmittance to <= T_MIN, as in the reference; a group whose 8 pixels have all stopped is skipped. Colours are
// stored less the background: sum_i w_i (c_i - bg) + bg = sum_i w_i c_i + T_final bg since sum_i w_i = 1 - T_final,
// so the 8-bit path needs no final T.

#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <math.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

enum { SW_BITS = 3, SW = 1 << SW_BITS, REC_IN = 11, REC = 16 };
static const float ALPHA_MIN = 1.0f / 255.0f;
static const float T_MIN = 1e-4f;
static const float EPS2D = 0.3f, NEAR = 0.01f, FAR = 1e10f;  // reference_torch's

static inline v8f splat(float x) { return v8f{x, x, x, x, x, x, x, x}; }

static inline v8f vmin(v8f a, v8f b) {
#if defined(__AVX__)
    return (v8f)_mm256_min_ps((__m256)a, (__m256)b);
#else
    return a < b ? a : b;
#endif
}

static inline v8f vmax(v8f a, v8f b) {
#if defined(__AVX__)
    return (v8f)_mm256_max_ps((__m256)a, (__m256)b);
#else
    return a > b ? a : b;
#endif
}

static inline v8f vsqrt(v8f x) {
#if defined(__AVX__)
    return (v8f)_mm256_sqrt_ps((__m256)x);
#else
    v8f r;
    for (int i = 0; i < 8; i++) r[i] = __builtin_sqrtf(x[i]);
    return r;
#endif
}

static inline v8f select(v8i mask, v8f a) { return (v8f)(mask & (v8i)a); }  // a where mask, else 0

// 2^x for x in [-126, 0] (callers clamp above and discard the lanes below -126): 2^round(x) built in the exponent
// bits times a degree-3 polynomial for 2^f, f = x - round(x) in [-1/2, 1/2] (minimax-fitted; relative error < 8e-5,
// far below the 8-bit resolution): 3 multiply-adds, where exp(x/32)^32 (the numba kernel's) takes 9 multiplies.
// x + 1.5 * 2^23 holds round(x) in its low mantissa bits, and shifting those bits by 23 puts round(x) in the
// exponent field as it is (two's complement, modulo 2^9: the magic's own bits shift out).
static inline v8f exp2_small(v8f x) {
    const v8f magic = splat(12582912.0f);
    v8f big = x + magic;
    v8f f = x - (big - magic);
    v8f p = splat(0.99992806f) + f * (splat(0.6932611f) + f * (splat(0.24261115f) + f * splat(0.055171087f)));
    return (v8f)((v8i)p + ((v8i)big << 23));
}

static inline bool any_positive(v8f a) {
#if defined(__AVX__)
    return _mm256_movemask_ps(_mm256_cmp_ps((__m256)a, _mm256_setzero_ps(), _CMP_GT_OQ)) != 0;
#else
    v8i m = a > splat(0.0f);
    int64_t w[4];
    memcpy(w, &m, sizeof w);
    return (w[0] | w[1] | w[2] | w[3]) != 0;
#endif
}

static inline int32_t lane_mask(v8i m) {  // bit i: lane i of a comparison's result is true
#if defined(__AVX__)
    return _mm256_movemask_ps((__m256)m);
#else
    int32_t bits = 0;
    for (int32_t i = 0; i < 8; i++) bits |= (m[i] != 0) << i;
    return bits;
#endif
}

static inline v8i vceil(v8f x) {  // for |x| < 2^31
    v8i t = __builtin_convertvector(x, v8i);  // truncation
    return t - (__builtin_convertvector(t, v8f) < x);  // a true comparison is -1
}

static inline v8i vfloor(v8f x) {
    v8i t = __builtin_convertvector(x, v8i);
    return t + (__builtin_convertvector(t, v8f) > x);
}

// The rows [lo[i], hi[i]] of the 4-column strips x in [4 (sx + i), 4 (sx + i) + 3] (pixel centres), i = 0..7,
// that the ellipse sigma <= s of record q (write_record) meets, clipped to the box rows [v0, v1]; lo > hi: none.
// sigma = A dx^2 / 2 + B dx dy + C dy^2 / 2 with (dx, dy) = centre - pixel: on a column dx the ellipse spans
// dy = (-B dx +- sqrt(2 C s - det dx^2)) / C; its top (bottom) point is at dy = +-sqrt(2 A s / det),
// dx = -+B dy / A. Widened by 0.01 px (float rounding).
static inline void strip_rows(const float *q, int32_t sx, int32_t v0, int32_t v1, v8i &lo, v8i &hi) {
    const float ln2 = 0.6931471805599453f;  // q[3], q[4] are in powers of 2 (B log2 e, C log2 e / 2)
    const v8f lane = {0.0f, 4.0f, 8.0f, 12.0f, 16.0f, 20.0f, 24.0f, 28.0f};
    float B = ln2 * q[3], R = q[11], dxt = q[12], inv_c = q[14], det = q[15];
    float cs2 = 4.0f * ln2 * q[4] * q[9];  // 2 C s
    v8f xa = splat((float)(4 * sx)) + lane;
    v8f dxa = vmax(splat(q[0] - 3.0f) - xa, splat(-R));  // dx over the strip, increasing
    v8f dxb = vmin(splat(q[0]) - xa, splat(R));
    v8i none = dxa > dxb + splat(0.01f);
    v8f d = vmin(vmax(splat(dxt), dxa), dxb);
    v8f top = (splat(-B) * d + vsqrt(vmax(splat(cs2) - splat(det) * d * d, splat(0.0f))));
    d = vmin(vmax(splat(-dxt), dxa), dxb);
    v8f bot = (splat(-B) * d - vsqrt(vmax(splat(cs2) - splat(det) * d * d, splat(0.0f))));
    v8f flo = splat(q[1] - 0.01f) - top * splat(inv_c);  // rows v = my - dy
    v8f fhi = splat(q[1] + 0.01f) - bot * splat(inv_c);
    v8f fv0 = splat((float)v0), fv1 = splat((float)v1);
    lo = vceil(vmin(vmax(flo, fv0), fv1 + splat(1.0f)));
    hi = vfloor(vmax(vmin(fhi, fv1), fv0 - splat(1.0f)));
    lo = none ? v8i{1, 1, 1, 1, 1, 1, 1, 1} : lo;
    hi = none ? v8i{0, 0, 0, 0, 0, 0, 0, 0} : hi;
}

// One record in the layout the binning and the blend read (REC floats): mx, my; log2(e) times A/2, B, C/2 and
// log opacity (the blend works in powers of 2: exp2_small); r - bg_r, g - bg_g, b - bg_b; s = ln(255 opacity); depth
// (column 10, as cpu_tiles._depth_order reads it); then for strip_rows the ellipse's x half-width R, the x and y of
// its top point from the centre, 1/C and the conic's determinant. A, B, C: the conic (sigma = A dx^2 / 2 + B dx dy +
// C dy^2 / 2); the ellipse sigma <= s has half-widths sqrt(2 s C / det), sqrt(2 s A / det).
static inline void write_record(float *q, float mx, float my, float A, float B, float C, float s, float r, float g,
                                float b, float z, const float *bg) {
    const float log2e = 1.4426950408889634f, ln255 = 5.541263545158426f;
    float det = A * C - B * B, dyt = sqrtf(2.0f * A * s / det);
    q[0] = mx, q[1] = my;
    q[2] = 0.5f * log2e * A, q[3] = log2e * B, q[4] = 0.5f * log2e * C, q[5] = log2e * (s - ln255);
    q[6] = r - bg[0], q[7] = g - bg[1], q[8] = b - bg[2];
    q[9] = s, q[10] = z;
    q[11] = sqrtf(2.0f * C * s / det), q[12] = -B * dyt / A, q[13] = dyt, q[14] = 1.0f / C, q[15] = det;
}

// ln(x) for positive normal x: x = m 2^e with m in [1, 2), ln m = 2 atanh((m - 1) / (m + 1)) by its series to
// t^9 (absolute error < 2e-6).
static inline v8f vlog(v8f x) {
    v8i bits = (v8i)x;
    v8i e = ((bits >> 23) & 0xff) - 127;
    v8f m = (v8f)((bits & 0x007fffff) | 0x3f800000);
    v8f t = (m - splat(1.0f)) / (m + splat(1.0f)), t2 = t * t;
    v8f series = splat(1.0f) + t2 * (splat(1.0f / 3.0f) + t2 * (splat(1.0f / 5.0f) + t2 * (splat(1.0f / 7.0f) +
                                                                                       t2 * splat(1.0f / 9.0f))));
    return __builtin_convertvector(e, v8f) * splat(0.6931471805599453f) + splat(2.0f) * t * series;
}

static inline v8f gather(const float *a, int64_t stride, int64_t i0, int32_t lanes) {
    v8f v = splat(0.0f);
    for (int32_t l = 0; l < lanes; l++) v[l] = a[(i0 + l) * stride];
    return v;
}

extern "C" {

// cpu_tiles._project for degree-0 colours, 8 Gaussians per vector (the same float32 formulas): means [N, 3], quats
// [N, 4] wxyz, scales [N, 3], opacities [N], sh0 [N, 3] (the degree-0 SH coefficients); view [3, 4] world->camera;
// intr (fx, fy, cx, cy); lims (xn, xp, yn, yp) clamp limits for J; bg [3]. Writes the records rec [N, REC]
// (write_record) and boxes box [N, 4] (u0, u1, v0, v1 inclusive, clipped to the image) of the visible Gaussians and
// visible [N] (0 / 1).
void rs_project(const float *means, const float *quats, const float *scales, const float *opacities,
                const float *sh0, const float *view, const float *intr, const float *lims, int32_t width,
                int32_t height, int64_t n, const float *bg, float *rec, int32_t *box, uint8_t *visible) {
    const v8f one = splat(1.0f), two = splat(2.0f), zero = splat(0.0f);
    const float fx = intr[0], fy = intr[1], cx = intr[2], cy = intr[3];
    const float w_max = (float)(width - 1), h_max = (float)(height - 1);
    const float C0 = 0.28209479177387814f;
    for (int64_t i0 = 0; i0 < n; i0 += 8) {
        int32_t lanes = n - i0 < 8 ? (int32_t)(n - i0) : 8;
        v8f px = gather(means, 3, i0, lanes), py = gather(means + 1, 3, i0, lanes);
        v8f pz = gather(means + 2, 3, i0, lanes), o = gather(opacities, 1, i0, lanes);
        v8f x = splat(view[0]) * px + splat(view[1]) * py + splat(view[2]) * pz + splat(view[3]);
        v8f y = splat(view[4]) * px + splat(view[5]) * py + splat(view[6]) * pz + splat(view[7]);
        v8f z = splat(view[8]) * px + splat(view[9]) * py + splat(view[10]) * pz + splat(view[11]);
        v8f qw = gather(quats, 4, i0, lanes), qx = gather(quats + 1, 4, i0, lanes);
        v8f qy = gather(quats + 2, 4, i0, lanes), qz = gather(quats + 3, 4, i0, lanes);
        v8f qn = one / vmax(vsqrt(qw * qw + qx * qx + qy * qy + qz * qz), splat(1e-12f));
        qw *= qn, qx *= qn, qy *= qn, qz *= qn;
        v8f sx = gather(scales, 3, i0, lanes), sy = gather(scales + 1, 3, i0, lanes);
        v8f sz = gather(scales + 2, 3, i0, lanes);
        v8f r00 = (one - two * (qy * qy + qz * qz)) * sx, r01 = two * (qx * qy - qw * qz) * sy;
        v8f r02 = two * (qx * qz + qw * qy) * sz, r10 = two * (qx * qy + qw * qz) * sx;
        v8f r11 = (one - two * (qx * qx + qz * qz)) * sy, r12 = two * (qy * qz - qw * qx) * sz;
        v8f r20 = two * (qx * qz - qw * qy) * sx, r21 = two * (qy * qz + qw * qx) * sy;
        v8f r22 = (one - two * (qx * qx + qy * qy)) * sz;
        v8f iz = one / z;
        v8f tx = z * vmin(splat(lims[1]), vmax(splat(-lims[0]), x * iz));
        v8f ty = z * vmin(splat(lims[3]), vmax(splat(-lims[2]), y * iz));
        v8f j00 = splat(fx) * iz, j02 = splat(-fx) * tx * iz * iz;
        v8f j11 = splat(fy) * iz, j12 = splat(-fy) * ty * iz * iz;
        v8f a0 = j00 * splat(view[0]) + j02 * splat(view[8]), a1 = j00 * splat(view[1]) + j02 * splat(view[9]);
        v8f a2 = j00 * splat(view[2]) + j02 * splat(view[10]);
        v8f b0 = j11 * splat(view[4]) + j12 * splat(view[8]), b1 = j11 * splat(view[5]) + j12 * splat(view[9]);
        v8f b2 = j11 * splat(view[6]) + j12 * splat(view[10]);
        v8f t00 = a0 * r00 + a1 * r10 + a2 * r20, t01 = a0 * r01 + a1 * r11 + a2 * r21;
        v8f t02 = a0 * r02 + a1 * r12 + a2 * r22, t10 = b0 * r00 + b1 * r10 + b2 * r20;
        v8f t11 = b0 * r01 + b1 * r11 + b2 * r21, t12 = b0 * r02 + b1 * r12 + b2 * r22;
        v8f ca = t00 * t00 + t01 * t01 + t02 * t02 + splat(EPS2D);
        v8f cb = t00 * t10 + t01 * t11 + t02 * t12;
        v8f cc = t10 * t10 + t11 * t11 + t12 * t12 + splat(EPS2D);
        v8f det = ca * cc - cb * cb;
        v8f idet = one / det;
        v8f mx = splat(fx) * x * iz + splat(cx), my = splat(fy) * y * iz + splat(cy);
        v8f lo = vlog(vmax(o * splat(255.0f), one));  // only the lanes with o >= 1/255 are kept
        v8f ext = vmin(splat(3.33f), vsqrt(two * lo));
        v8f ex = ext * vsqrt(vmax(ca, zero)), ey = ext * vsqrt(vmax(cc, zero));
        v8f left = mx - ex, right = mx + ex, top = my - ey, bottom = my + ey;
        v8i ok = (o >= splat(ALPHA_MIN)) & (z >= splat(NEAR)) & (z <= splat(FAR)) & (det > zero) &
                 (right >= zero) & (left <= splat(w_max)) & (bottom >= zero) & (top <= splat(h_max));
        // u0 = ceil(left), u1 = floor(right) clipped to the image (>= 0 after the clip: truncation floors)
        v8f cl = vmax(left, zero), cr = vmin(right, splat(w_max)), ct = vmax(top, zero), cbm = vmin(bottom, splat(h_max));
        cl = select(ok, cl), cr = select(ok, cr), ct = select(ok, ct), cbm = select(ok, cbm);  // no NaN conversions
        v8i u0 = __builtin_convertvector(cl, v8i), u1 = __builtin_convertvector(cr, v8i);
        v8i v0 = __builtin_convertvector(ct, v8i), v1 = __builtin_convertvector(cbm, v8i);
        u0 -= __builtin_convertvector(u0, v8f) < cl;
        v0 -= __builtin_convertvector(v0, v8f) < ct;
        ok &= (u0 <= u1) & (v0 <= v1);
        v8f cr_ = vmax(splat(C0) * gather(sh0, 3, i0, lanes) + splat(0.5f), zero);
        v8f cg_ = vmax(splat(C0) * gather(sh0 + 1, 3, i0, lanes) + splat(0.5f), zero);
        v8f cb_ = vmax(splat(C0) * gather(sh0 + 2, 3, i0, lanes) + splat(0.5f), zero);
        v8f A = cc * idet, B = -cb * idet, C = ca * idet;
        for (int32_t l = 0; l < lanes; l++) {
            int64_t i = i0 + l;
            visible[i] = ok[l] != 0;
            if (!ok[l]) continue;
            write_record(rec + i * REC, mx[l], my[l], A[l], B[l], C[l], lo[l], cr_[l], cg_[l], cb_[l], z[l], bg);
            int32_t *b = box + i * 4;
            b[0] = u0[l], b[1] = u1[l], b[2] = v0[l], b[3] = v1[l];
        }
    }
}

}  // extern "C"

extern "C" {

// The records (write_record) of cpu_tiles._project's rec_in [N, REC_IN] (mx, my, A, B, C, log opacity, ln(255
// opacity), r, g, b, depth) for the Gaussians with visible[i], into rec [N, REC] (the numba projection's path: SH
// colours of degree > 0).
void rs_records(const float *rec_in, const uint8_t *visible, int64_t n, const float *bg, float *rec) {
    for (int64_t i = 0; i < n; i++) {
        if (!visible[i]) continue;
        const float *r = rec_in + i * REC_IN;
        write_record(rec + i * REC, r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8], r[9], r[10], bg);
    }
}

// Binning into 8-column strips (SW wide, the image's height) of the visible Gaussians order [M] (depth order) with
// records rec [N, REC] and pixel boxes box [N, 4] (u0, u1, v0, v1). strip_start [n_strips + 1] <- where each strip's
// entries start in strip_list [capacity, 3]: (Gaussian index, rows of the strip's left and right 4-column halves
// that its ellipse meets, packed first | last << 16, first > last: none), for every strip of the box the ellipse
// meets, in depth order. Returns the number of entries (strip_list is written only when it is <= capacity; call
// again with more), or -1 when out of memory.
int64_t rs_bin(const float *rec, const int32_t *box, const int32_t *order, int32_t m, int32_t n_strips,
               int32_t *strip_start, int32_t *strip_list, int64_t capacity) {
    // per strip of each Gaussian: pack L, pack R (grown as needed); per Gaussian its first and last strip
    int64_t scratch_cap = 8 * (int64_t)m + 64, used = 0;
    int32_t *scratch = (int32_t *)malloc(sizeof(int32_t) * (size_t)scratch_cap);
    int32_t *columns = (int32_t *)malloc(sizeof(int32_t) * (size_t)(2 * (int64_t)m + 1));
    if (!scratch || !columns) {
        free(scratch);
        free(columns);
        return -1;
    }
    memset(strip_start, 0, sizeof(int32_t) * (size_t)(n_strips + 1));
    for (int32_t j = 0; j < m; j++) {
        if (j + 8 < m) {  // the records are read in depth order, scattered: fetch ahead
            __builtin_prefetch(rec + (int64_t)order[j + 8] * REC);
            __builtin_prefetch(box + (int64_t)order[j + 8] * 4);
        }
        const float *s = rec + (int64_t)order[j] * REC;
        const int32_t *b = box + (int64_t)order[j] * 4;
        int32_t sx0 = b[0] >> SW_BITS, sx1 = b[1] >> SW_BITS;
        columns[2 * j] = sx0;
        columns[2 * j + 1] = sx1;
        if (used + 2 * (sx1 - sx0 + 4) > scratch_cap) {
            scratch_cap = 2 * scratch_cap + 2 * (sx1 - sx0 + 4);
            int32_t *grown = (int32_t *)realloc(scratch, sizeof(int32_t) * (size_t)scratch_cap);
            if (!grown) {
                free(scratch);
                free(columns);
                return -1;
            }
            scratch = grown;
        }
        int32_t *sp = scratch + used;
        used += 2 * (sx1 - sx0 + 1);
        for (int32_t sxs = sx0; sxs <= sx1; sxs += 4) {  // 4 strips = 8 half strips per vector
            v8i lo, hi;
            strip_rows(s, 2 * sxs, b[2], b[3], lo, hi);
            // lanes 2 i, 2 i + 1: strip sxs + i's halves, packed first | last << 16 (none: 0xffff) in the order the
            // scratch holds them; the lanes past sx1 are overwritten by the next Gaussian (the capacity check above)
            v8i none = lo > hi;
            v8i packed = none ? v8i{0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff} : lo | (hi << 16);
            memcpy(sp, &packed, sizeof packed);
            int32_t met = ~lane_mask(none);
            for (int32_t i = 0; i < 4 && sxs + i <= sx1; i++, sp += 2)
                strip_start[sxs + i + 1] += (met >> 2 * i) & 3 ? 1 : 0;
        }
    }
    for (int32_t t = 0; t < n_strips; t++) strip_start[t + 1] += strip_start[t];
    int64_t entries = strip_start[n_strips];
    if (entries <= capacity) {
        int32_t fill[n_strips > 0 ? n_strips : 1];
        memcpy(fill, strip_start, sizeof(int32_t) * (size_t)n_strips);
        const int32_t *sp = scratch;
        for (int32_t j = 0; j < m; j++) {
            for (int32_t sx = columns[2 * j]; sx <= columns[2 * j + 1]; sx++, sp += 2) {
                if (sp[0] == 0xffff && sp[1] == 0xffff) continue;  // the ellipse misses this strip
                int32_t *e = strip_list + 3 * (int64_t)fill[sx]++;
                e[0] = order[j];
                e[1] = sp[0];
                e[2] = sp[1];
            }
        }
    }
    free(scratch);
    free(columns);
    return entries;
}

// The strip width SW in pixels and the record length REC (cpu_tiles sizes its buffers from them).
void rs_layout(int32_t *out) {
    out[0] = SW;
    out[1] = REC;
}

}  // extern "C"

static inline uint8_t to_u8(float v) {
    v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    return (uint8_t)(v * 255.0f + 0.5f);
}


// A 4 x 2 pixel group (columns gx .. gx + 3, rows gy, gy + 1; lane i: column gx + i % 4, row gy + i / 4): T and
// the colour sums (alpha and depth sums for float output) of its 8 pixels, kept in registers while compositing.
struct Group {
    v8f T, r, g, b, a, z;
    v8f px, py;  // the pixel coordinates of the 8 lanes
};

template <bool FLOAT_OUT>
static inline void write_group(const Group &s, int32_t width, int32_t height, const float *bg, uint8_t *out_u8,
                               float *out_rgb, float *out_alpha, float *out_depth) {
    int32_t gx = (int32_t)s.px[0], gy = (int32_t)s.py[0];
    float rr[8], gg[8], bb[8], aa[8], zz[8];
    memcpy(rr, &s.r, 32);
    memcpy(gg, &s.g, 32);
    memcpy(bb, &s.b, 32);
    if (FLOAT_OUT) {
        memcpy(aa, &s.a, 32);
        memcpy(zz, &s.z, 32);
    }
    int32_t nu = width - gx < 4 ? width - gx : 4;
    if (!FLOAT_OUT) {  // rgb + bg clamped to 0..1, rounded, in vectors
        const v8f lo = splat(0.0f), hi = splat(1.0f), k = splat(255.0f), half = splat(0.5f);
        v8i ir = __builtin_convertvector(vmin(vmax(s.r + splat(bg[0]), lo), hi) * k + half, v8i);
        v8i ig = __builtin_convertvector(vmin(vmax(s.g + splat(bg[1]), lo), hi) * k + half, v8i);
        v8i ib = __builtin_convertvector(vmin(vmax(s.b + splat(bg[2]), lo), hi) * k + half, v8i);
        for (int32_t h = 0; h < 2 && gy + h < height; h++) {
            uint8_t *o = out_u8 + 3 * ((int64_t)(gy + h) * width + gx);
            for (int32_t i = 0; i < nu; i++) {
                o[3 * i] = (uint8_t)ir[4 * h + i];
                o[3 * i + 1] = (uint8_t)ig[4 * h + i];
                o[3 * i + 2] = (uint8_t)ib[4 * h + i];
            }
        }
        return;
    }
    for (int32_t h = 0; h < 2 && gy + h < height; h++) {
        int64_t row = (int64_t)(gy + h) * width + gx;
        for (int32_t i = 0; i < nu; i++) {
            int32_t l = 4 * h + i;
            float cr = rr[l] + bg[0], cg = gg[l] + bg[1], cb = bb[l] + bg[2];
            if (FLOAT_OUT) {
                float *o = out_rgb + 3 * (row + i);
                o[0] = cr;
                o[1] = cg;
                o[2] = cb;
                out_alpha[row + i] = aa[l];
                out_depth[row + i] = zz[l] / (aa[l] > 1e-10f ? aa[l] : 1e-10f);
            } else {
                uint8_t *o = out_u8 + 3 * (row + i);
                o[0] = to_u8(cr);
                o[1] = to_u8(cg);
                o[2] = to_u8(cb);
            }
        }
    }
}

// Gaussian-major compositing of one strip (two 4-column halves, the image's height): the state of every 4 x 2
// group of the strip (T and the colour sums: NV vectors, 256 bytes per row pair for 8-bit output, 64 KiB at 512
// rows) stays in a per-thread array (in L2), and each entry of the strip, in depth order, is blended into the groups
// of the rows it meets in each half, with no per-group lists. Down a half the exponent is a quadratic in the row
// pair p: it steps by a forward difference (x += d, d += dd: two adds per group instead of the pixel coordinates and
// the conic's five operations). A group whose 8 pixels have all stopped is marked dead and skipped.
// Tried on this kernel, no gain (interleaved A/B, whole frame, full level): bands of 32 row pairs so the state fits
// in L1 (0.78x: every band rescans the strip's entries), no dead-group test (0.98x), the test on T itself instead
// of a byte per group (0.94x), skipping the exponent of groups below 1/255 (1.00x), both halves in one pass over the
// union of their pairs (1.01x), T (1 - alpha) off the w chain (0.99x), prefetching 16 entries ahead or the record's
// second cache line, 64-byte aligned records (within +-3 %, the noise).
template <bool FLOAT_OUT>
static void raster(const float *rec, const int32_t *strip_start, const int32_t *strip_list, int32_t width,
                   int32_t height, int32_t n_strips, const float *bg, uint8_t *out_u8, float *out_rgb,
                   float *out_alpha, float *out_depth, int32_t *next, int32_t chunk) {
    enum { NV = FLOAT_OUT ? 6 : 4 };  // T, r, g, b (, alpha, depth)
    const int32_t pairs = (height + 1) / 2, groups = 2 * pairs;
    v8f *st = (v8f *)aligned_alloc(32, sizeof(v8f) * NV * ((size_t)groups + 1));
    uint8_t *alive = (uint8_t *)malloc((size_t)groups + 1);
    if (!st || !alive) {  // the caller sees next[1] fall short (cpu_tiles: RuntimeError)
        free(st);
        free(alive);
        return;
    }
    const v8f lane_x = {0.0f, 1.0f, 2.0f, 3.0f, 0.0f, 1.0f, 2.0f, 3.0f};
    const v8f lane_y = {0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const v8f lmax = splat(-0.0014434169f), amin_log2 = splat(-7.9943534f), tmin = splat(T_MIN);
    const v8f zero = splat(0.0f), one = splat(1.0f);
    for (;;) {
        int32_t t0 = __atomic_fetch_add(next, chunk, __ATOMIC_RELAXED);
        if (t0 >= n_strips) break;
        int32_t t1 = t0 + chunk < n_strips ? t0 + chunk : n_strips;
        for (int32_t t = t0; t < t1; t++) {
            const int32_t x0 = t * SW, j0 = strip_start[t], j1 = strip_start[t + 1];
            for (int32_t g = 0; g < groups; g++) {
                st[NV * g] = one;
                for (int32_t v = 1; v < NV; v++) st[NV * g + v] = zero;
            }
            memset(alive, 1, (size_t)(uint32_t)groups);
            for (int32_t j = j0; j < j1; j++) {
                const int32_t *e = strip_list + 3 * (int64_t)j;
                if (j + 8 < j1) __builtin_prefetch(rec + (int64_t)e[24] * REC);
                const float *q = rec + (int64_t)e[0] * REC;
                const v8f cr = splat(q[6]), cg = splat(q[7]), cb = splat(q[8]);
                v8f cz = zero;
                if (FLOAT_OUT) cz = splat(q[10]);
                for (int32_t h = 0; h < 2; h++) {
                    int32_t lo = e[1 + h] & 0xffff, hi = e[1 + h] >> 16;
                    if (lo > hi) continue;
                    int32_t p0 = lo >> 1, p1 = hi >> 1;
                    // x(dx, dy) = q5 - q2 dx^2 - q3 dx dy - q4 dy^2 at the first pair; dy falls by 2 per pair
                    v8f dx = splat(q[0]) - (splat((float)(x0 + 4 * h)) + lane_x);
                    v8f dy = splat(q[1]) - (splat((float)(2 * p0)) + lane_y);
                    v8f x = splat(q[5]) - (splat(q[2]) * dx + splat(q[3]) * dy) * dx - splat(q[4]) * dy * dy;
                    v8f d = splat(2.0f * q[3]) * dx + splat(4.0f * q[4]) * dy - splat(4.0f * q[4]);
                    const v8f dd = splat(-8.0f * q[4]);
                    for (int32_t p = p0; p <= p1; p++, x += d, d += dd) {
                        int32_t g = 2 * p + h;
                        if (!alive[g]) continue;
                        v8f *s = st + NV * g;
                        // alpha = min(0.999, opacity exp(-sigma)) = 2^min(x, log2 0.999), kept when >= 1/255
                        v8i keep = x >= amin_log2;
                        v8f a = select(keep, exp2_small(vmin(x, lmax)));  // lanes below -126: garbage, dropped
                        v8f T = s[0];
                        v8f w = a * T;
                        v8f nT = T - w;
                        v8i ok = nT > tmin;
                        w = select(ok, w);
                        T = select(ok, nT);
                        s[0] = T;
                        s[1] += w * cr;
                        s[2] += w * cg;
                        s[3] += w * cb;
                        if (FLOAT_OUT) {
                            s[4] += w;
                            s[5] += w * cz;
                        }
                        alive[g] = any_positive(T);
                    }
                }
            }
            for (int32_t g = 0; g < groups; g++) {
                int32_t h = g & 1;
                if (x0 + 4 * h >= width) continue;
                Group s;
                s.px = splat((float)(x0 + 4 * h)) + lane_x;
                s.py = splat((float)(2 * (g >> 1))) + lane_y;
                s.T = st[NV * g];
                s.r = st[NV * g + 1], s.g = st[NV * g + 2], s.b = st[NV * g + 3];
                if (FLOAT_OUT) s.a = st[NV * g + 4], s.z = st[NV * g + 5];
                write_group<FLOAT_OUT>(s, width, height, bg, out_u8, out_rgb, out_alpha, out_depth);
            }
        }
        __atomic_fetch_add(next + 1, t1 - t0, __ATOMIC_RELAXED);  // strips done
    }
    free(st);
    free(alive);
}

extern "C" {

// Composite until no strip is left: each call (one per thread) takes `chunk` strips at a time from the counter
// next[0] and adds the strips it finished to next[1]. Writes out_u8 [H, W, 3] when float_out is 0, else out_rgb
// [H, W, 3], out_alpha [H, W], out_depth [H, W].
void rs_raster(const float *rec, const int32_t *strip_start, const int32_t *strip_list, int32_t width,
               int32_t height, int32_t n_strips, const float *bg, int32_t float_out, uint8_t *out_u8, float *out_rgb,
               float *out_alpha, float *out_depth, int32_t *next, int32_t chunk) {
    if (float_out)
        raster<true>(rec, strip_start, strip_list, width, height, n_strips, bg, out_u8, out_rgb, out_alpha,
                        out_depth, next, chunk);
    else
        raster<false>(rec, strip_start, strip_list, width, height, n_strips, bg, out_u8, out_rgb, out_alpha,
                         out_depth, next, chunk);
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
