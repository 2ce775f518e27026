// Fused PSA aggregation (PSANet, Zhao et al., ECCV 2018): out = F @ softmax(PSAMask(A)) / nf
// computed from the over-completed map A [N, mh*mw, H, W] without the [N, HW, HW] matrix.
// The derivation is in psanet_lite/ops/aggregate.py; the names below follow it.
//
// Every (mask cell k = (i, j), position x = (h, w)) pair links x to its partner
//     y = (h + sign*(i - hh), w + sign*(j - hw)),   hh = (mh-1)/2, hw = (mw-1)/2,
// when y lies inside the map. One kernel of each kind serves all four uses by choosing
// the sign and where the softmax statistics and the attention value are read:
//
//                         sign    stats at   attention at
//   forward collect        +1        x            x
//   forward distribute     -1        x            y
//   grad_features collect  -1        y            y
//   grad_features distrib. +1        y            x
//
// Kernels (one instance per storage type: f32, f64, and f16/bf16 as raw 16-bit words
// converted by hand; accumulation in float, or double for f64):
//   psa_softmax_stats   column max, 1/denominator and the weight of the cells the mask
//                       does not cover (the reference softmax's exp(0) share)
//   psa_gather          out[c, x] = scale * (sum_k weight(k, .) * values[c, y] + extra[c, x])
//                       forward (values = features) and grad_features (values = grad_out)
//   psa_attention_grad  grad_attention through the softmax, one value per written cell
//
// Launch: 1-D grids of 256-thread blocks (cupy_runtime.launch); a block handles a tile
// of 32 consecutive positions of one row (threadIdx.x % 32) and splits its other work
// (cell rows, channels or cells) over the 8 warps (threadIdx.x / 32). Grids larger than
// the launcher's cap are walked with a block-stride loop.

#define PSA_LANES 32             // positions per tile (one warp wide)
#define PSA_WARPS 8              // warps per block (256 threads)
#define PSA_CELLS 32             // mask cells per staged chunk (consecutive j of one row i)
#define PSA_SEGMENT 64           // staged partner columns: PSA_LANES + PSA_CELLS - 1, padded
#define PSA_GATHER_CHANNELS 64   // channels per psa_gather block: 8 per thread
#define PSA_GRAD_CHANNELS 32     // channels staged per step in psa_attention_grad

struct Half { unsigned short bits; };
struct BFloat16 { unsigned short bits; };

// Storage <-> accumulator conversions.
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ double load(const double* p) { return *p; }
__device__ __forceinline__ float load(const Half* p) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p->bits));
    return f;
}
__device__ __forceinline__ float load(const BFloat16* p) {
    return __uint_as_float(((unsigned int)p->bits) << 16);
}
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(Half* p, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p->bits = h;
}
__device__ __forceinline__ void store(BFloat16* p, float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p->bits = 0x7fc0;  // NaN stays a (quiet) NaN
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    p->bits = (unsigned short)(u >> 16);
}

__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }

template <typename Acc> __device__ __forceinline__ Acc negative_infinity();
template <> __device__ __forceinline__ float negative_infinity<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double negative_infinity<double>() {
    return __longlong_as_double(0xfff0000000000000LL);
}

// Mask indices m (0..msize-1) whose partner coordinate pos + sign*(m - half) lies in
// 0..size-1, as the inclusive range [lo, hi] (empty when lo > hi).
__device__ __forceinline__ void cell_range(int pos, int size, int half, int msize, int sign,
                                           int* lo, int* hi) {
    int a, b;
    if (sign > 0) {
        a = half - pos;
        b = half + size - 1 - pos;
    } else {
        a = half + pos - size + 1;
        b = half + pos;
    }
    *lo = a > 0 ? a : 0;
    *hi = b < msize - 1 ? b : msize - 1;
}

// Softmax statistics of every column x of the attention matrix: the max over its
// written cells (and over 0 when reference_mode and some cells of the column are not
// written), 1/denominator, and the weight exp(0 - max)/denominator of an unwritten cell
// (0 unless reference_mode). Warps split the mask rows; online max/sum, then a merge.
template <typename T, typename Acc>
__device__ void softmax_stats(const T* __restrict__ attention, Acc* __restrict__ column_max,
                              Acc* __restrict__ inv_denominator, Acc* __restrict__ outside_weight,
                              int batch, int height, int width, int mh, int mw, int sign,
                              int attention_at_partner, int reference_mode) {
    __shared__ Acc part_max[PSA_WARPS][PSA_LANES];
    __shared__ Acc part_sum[PSA_WARPS][PSA_LANES];
    const int lane = threadIdx.x % PSA_LANES, warp = threadIdx.x / PSA_LANES;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSA_LANES - 1) / PSA_LANES;
    const long long blocks = (long long)batch * height * tiles_w;
    for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
        const int tile = (int)(b % tiles_w);
        const int h = (int)((b / tiles_w) % height);
        const long long n = b / ((long long)tiles_w * height);
        const int w = tile * PSA_LANES + lane;
        Acc m = negative_infinity<Acc>(), s = 0;
        int i_lo, i_hi, j_lo, j_hi;
        cell_range(h, height, half_h, mh, sign, &i_lo, &i_hi);
        cell_range(w, width, half_w, mw, sign, &j_lo, &j_hi);
        if (w < width) {
            const int x = h * width + w;
            for (int i = i_lo + warp; i <= i_hi; i += PSA_WARPS) {
                const int yh = h + sign * (i - half_h);
                for (int j = j_lo; j <= j_hi; ++j) {
                    const int y = yh * width + w + sign * (j - half_w);
                    const long long k = (long long)i * mw + j;
                    const Acc v = load(attention + (n * mh * mw + k) * hw + (attention_at_partner ? y : x));
                    if (v > m) {
                        s = s * exp_acc(m - v) + 1;
                        m = v;
                    } else {
                        s += exp_acc(v - m);
                    }
                }
            }
        }
        part_max[warp][lane] = m;
        part_sum[warp][lane] = s;
        __syncthreads();
        if (warp == 0 && w < width) {
            Acc big = part_max[0][lane];
            for (int p = 1; p < PSA_WARPS; ++p) big = part_max[p][lane] > big ? part_max[p][lane] : big;
            Acc total = 0;
            for (int p = 0; p < PSA_WARPS; ++p) {
                if (part_sum[p][lane] > 0) total += part_sum[p][lane] * exp_acc(part_max[p][lane] - big);
            }
            const long long unwritten = (long long)hw - (long long)(i_hi - i_lo + 1) * (j_hi - j_lo + 1);
            Acc outside = 0;
            if (reference_mode && unwritten > 0) {
                // The zero-filled entries join the softmax: max over 0 too, exp(0 - max) each.
                const Acc shifted = big > 0 ? big : 0;
                total = total * exp_acc(big - shifted) + (Acc)unwritten * exp_acc(-shifted);
                big = shifted;
                outside = exp_acc(-big) / total;
            }
            const long long at = n * hw + h * width + w;
            column_max[at] = big;
            inv_denominator[at] = 1 / total;
            outside_weight[at] = outside;
        }
        __syncthreads();
    }
}

// Weight that the attention value v of one cell of column q carries in the sum.
// softmax: P - P_outside, because the unwritten cells' share is added separately
// (extra term) as P_outside * (sum over all positions); none: the raw value.
template <typename Acc>
__device__ __forceinline__ Acc cell_weight(Acc v, const Acc* column_max, const Acc* inv_denominator,
                                           const Acc* outside_weight, long long q, int softmax) {
    if (!softmax) return v;
    return exp_acc(v - column_max[q]) * inv_denominator[q] - outside_weight[q];
}

// out[n, c, x] = scale * (sum over cells k with partner y in the map of
//                weight(k) * values[n, c, y] + extra[n, c, x]),
// extra = totals[n, c] * (totals_times_outside ? outside_weight[n, x] : 1), 0 without totals.
// A block: one row h, 32 positions, 64 channels (8 per warp). Per chunk of 32 cells of
// one mask row the block stages the 32x32 weights and the 64 x 63 partner values (one
// contiguous row segment) in shared memory, so each weight serves 8 channels and each
// staged value up to 32 cells.
template <typename T, typename Acc>
__device__ void gather(const T* __restrict__ values, const T* __restrict__ attention,
                       const Acc* __restrict__ column_max, const Acc* __restrict__ inv_denominator,
                       const Acc* __restrict__ outside_weight, const Acc* __restrict__ totals,
                       T* __restrict__ out, int batch, int channels, int height, int width, int mh,
                       int mw, int sign, int stats_at_partner, int attention_at_partner, int softmax,
                       int totals_times_outside, Acc scale) {
    __shared__ Acc weights[PSA_CELLS][PSA_LANES];
    __shared__ Acc staged[PSA_GATHER_CHANNELS][PSA_SEGMENT];
    const int lane = threadIdx.x % PSA_LANES, warp = threadIdx.x / PSA_LANES;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSA_LANES - 1) / PSA_LANES;
    const int tiles_c = (channels + PSA_GATHER_CHANNELS - 1) / PSA_GATHER_CHANNELS;
    const int per_warp = PSA_GATHER_CHANNELS / PSA_WARPS;
    const long long blocks = (long long)batch * height * tiles_w * tiles_c;
    for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
        const int tile_c = (int)(b % tiles_c);
        const int tile = (int)((b / tiles_c) % tiles_w);
        const int h = (int)((b / ((long long)tiles_c * tiles_w)) % height);
        const long long n = b / ((long long)tiles_c * tiles_w * height);
        const int w0 = tile * PSA_LANES, w_last = min(w0 + PSA_LANES, width) - 1;
        const int w = w0 + lane, c0 = tile_c * PSA_GATHER_CHANNELS;
        Acc acc[PSA_GATHER_CHANNELS / PSA_WARPS];
        for (int m = 0; m < per_warp; ++m) acc[m] = 0;
        int i_lo, i_hi, j_lo, j_hi, j_lo2, j_hi2;
        cell_range(h, height, half_h, mh, sign, &i_lo, &i_hi);
        // Union of the tile's column ranges: the bounds move monotonically with w.
        cell_range(w0, width, half_w, mw, sign, &j_lo, &j_hi);
        cell_range(w_last, width, half_w, mw, sign, &j_lo2, &j_hi2);
        j_lo = min(j_lo, j_lo2);
        j_hi = max(j_hi, j_hi2);
        for (int i = i_lo; i <= i_hi; ++i) {
            const int yh = h + sign * (i - half_h);
            for (int j0 = j_lo; j0 <= j_hi; j0 += PSA_CELLS) {
                // Partner columns of this chunk: w + sign*(j - half_w) for w in the tile,
                // j in j0..j0+31, a segment of 63 starting at seg0; cell kk of lane reads
                // staged[.][lane + kk] (sign +1) or staged[.][lane + 31 - kk] (sign -1).
                const int seg0 = sign > 0 ? w0 + j0 - half_w : w0 - j0 - (PSA_CELLS - 1) + half_w;
                for (int kk = warp; kk < PSA_CELLS; kk += PSA_WARPS) {
                    const int j = j0 + kk;
                    const int yw = w + sign * (j - half_w);
                    Acc weight = 0;
                    if (j <= j_hi && w < width && yw >= 0 && yw < width) {
                        const int x = h * width + w, y = yh * width + yw;
                        const long long k = (long long)i * mw + j;
                        const Acc v = load(attention + (n * mh * mw + k) * hw + (attention_at_partner ? y : x));
                        weight = cell_weight<Acc>(v, column_max, inv_denominator, outside_weight,
                                                  n * hw + (stats_at_partner ? y : x), softmax);
                    }
                    weights[kk][lane] = weight;
                }
                for (int e = threadIdx.x; e < PSA_GATHER_CHANNELS * (PSA_LANES + PSA_CELLS - 1);
                     e += PSA_LANES * PSA_WARPS) {
                    const int cl = e / (PSA_LANES + PSA_CELLS - 1);
                    const int t = e - cl * (PSA_LANES + PSA_CELLS - 1);
                    const int yw = seg0 + t, c = c0 + cl;
                    Acc v = 0;
                    if (yw >= 0 && yw < width && c < channels) {
                        v = load(values + (n * channels + c) * hw + yh * width + yw);
                    }
                    staged[cl][t] = v;
                }
                __syncthreads();
                const int cells = min(PSA_CELLS, j_hi - j0 + 1);
                for (int kk = 0; kk < cells; ++kk) {
                    const Acc weight = weights[kk][lane];
                    const int t = sign > 0 ? lane + kk : lane + PSA_CELLS - 1 - kk;
                    for (int m = 0; m < per_warp; ++m) acc[m] += weight * staged[warp + PSA_WARPS * m][t];
                }
                __syncthreads();
            }
        }
        if (w < width) {
            const int x = h * width + w;
            for (int m = 0; m < per_warp; ++m) {
                const int c = c0 + warp + PSA_WARPS * m;
                if (c >= channels) continue;
                Acc extra = 0;
                if (totals) {
                    extra = totals[n * channels + c];
                    if (totals_times_outside) extra *= outside_weight[n * hw + x];
                }
                store(out + (n * channels + c) * hw + x, scale * (acc[m] + extra));
            }
        }
    }
}

// grad_attention for every written cell: with dP = scale * sum_c grad_out[c, x] *
// features[c, y], the softmax backward gives P * (dP - delta[x]), delta[x] = sum_c
// grad_out[c, x] * out[c, x] (computed by the caller); softmax none: dP itself.
// x is the output position (column) and y its partner, so here sign and the attention
// position are those of the forward. Cells never written keep the caller's zeros.
// A block: one row h, one mask row i, 32 positions x 32 cells (4 per warp); channels are
// staged 32 at a time (grad_out at the tile, features on the partner row segment).
template <typename T, typename Acc>
__device__ void attention_grad(const T* __restrict__ grad_out, const T* __restrict__ features,
                               const T* __restrict__ attention, const Acc* __restrict__ column_max,
                               const Acc* __restrict__ inv_denominator, const Acc* __restrict__ delta,
                               T* __restrict__ grad_attention, int batch, int channels, int height,
                               int width, int mh, int mw, int sign, int attention_at_partner, int softmax,
                               Acc scale) {
    __shared__ Acc staged_grad[PSA_GRAD_CHANNELS][PSA_LANES];
    __shared__ Acc staged_features[PSA_GRAD_CHANNELS][PSA_SEGMENT];
    const int lane = threadIdx.x % PSA_LANES, warp = threadIdx.x / PSA_LANES;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSA_LANES - 1) / PSA_LANES;
    const int chunks_j = (mw + PSA_CELLS - 1) / PSA_CELLS;
    const int per_warp = PSA_CELLS / PSA_WARPS;
    const long long blocks = (long long)batch * height * mh * tiles_w * chunks_j;
    for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
        const int chunk = (int)(b % chunks_j);
        const int tile = (int)((b / chunks_j) % tiles_w);
        const long long rest = b / ((long long)chunks_j * tiles_w);
        const int i = (int)(rest % mh);
        const int h = (int)((rest / mh) % height);
        const long long n = rest / ((long long)mh * height);
        const int yh = h + sign * (i - half_h);
        if (yh < 0 || yh >= height) continue;  // uniform over the block: no barrier is skipped
        const int w0 = tile * PSA_LANES, w = w0 + lane, j0 = chunk * PSA_CELLS;
        const int seg0 = sign > 0 ? w0 + j0 - half_w : w0 - j0 - (PSA_CELLS - 1) + half_w;
        Acc acc[PSA_CELLS / PSA_WARPS];
        for (int m = 0; m < per_warp; ++m) acc[m] = 0;
        for (int c0 = 0; c0 < channels; c0 += PSA_GRAD_CHANNELS) {
            for (int e = threadIdx.x; e < PSA_GRAD_CHANNELS * PSA_LANES; e += PSA_LANES * PSA_WARPS) {
                const int cl = e / PSA_LANES, t = e - cl * PSA_LANES, c = c0 + cl;
                Acc v = 0;
                if (w0 + t < width && c < channels) v = load(grad_out + (n * channels + c) * hw + h * width + w0 + t);
                staged_grad[cl][t] = v;
            }
            for (int e = threadIdx.x; e < PSA_GRAD_CHANNELS * (PSA_LANES + PSA_CELLS - 1);
                 e += PSA_LANES * PSA_WARPS) {
                const int cl = e / (PSA_LANES + PSA_CELLS - 1);
                const int t = e - cl * (PSA_LANES + PSA_CELLS - 1);
                const int yw = seg0 + t, c = c0 + cl;
                Acc v = 0;
                if (yw >= 0 && yw < width && c < channels) v = load(features + (n * channels + c) * hw + yh * width + yw);
                staged_features[cl][t] = v;
            }
            __syncthreads();
            for (int cl = 0; cl < PSA_GRAD_CHANNELS; ++cl) {
                const Acc g = staged_grad[cl][lane];
                for (int m = 0; m < per_warp; ++m) {
                    const int kk = warp + PSA_WARPS * m;
                    const int t = sign > 0 ? lane + kk : lane + PSA_CELLS - 1 - kk;
                    acc[m] += g * staged_features[cl][t];
                }
            }
            __syncthreads();
        }
        if (w >= width) continue;
        const int x = h * width + w;
        for (int m = 0; m < per_warp; ++m) {
            const int j = j0 + warp + PSA_WARPS * m;
            const int yw = w + sign * (j - half_w);
            if (j >= mw || yw < 0 || yw >= width) continue;
            const int y = yh * width + yw;
            const long long at = (n * mh * mw + (long long)i * mw + j) * hw + (attention_at_partner ? y : x);
            const Acc dp = scale * acc[m];
            Acc dz = dp;
            if (softmax) {
                const Acc p = exp_acc(load(attention + at) - column_max[n * hw + x]) * inv_denominator[n * hw + x];
                dz = p * (dp - delta[n * hw + x]);
            }
            store(grad_attention + at, dz);
        }
    }
}

#define PSA_AGGREGATE_INSTANCES(SUFFIX, T, ACC)                                                        \
    extern "C" __global__ void psa_softmax_stats_##SUFFIX(                                            \
        const T* attention, ACC* column_max, ACC* inv_denominator, ACC* outside_weight, int batch,    \
        int height, int width, int mh, int mw, int sign, int attention_at_partner, int reference_mode) { \
        softmax_stats<T, ACC>(attention, column_max, inv_denominator, outside_weight, batch, height,  \
                              width, mh, mw, sign, attention_at_partner, reference_mode);             \
    }                                                                                                 \
    extern "C" __global__ void psa_gather_##SUFFIX(                                                   \
        const T* values, const T* attention, const ACC* column_max, const ACC* inv_denominator,       \
        const ACC* outside_weight, const ACC* totals, T* out, int batch, int channels, int height,     \
        int width, int mh, int mw, int sign, int stats_at_partner, int attention_at_partner,          \
        int softmax, int totals_times_outside, ACC scale) {                                           \
        gather<T, ACC>(values, attention, column_max, inv_denominator, outside_weight, totals, out,   \
                       batch, channels, height, width, mh, mw, sign, stats_at_partner,                \
                       attention_at_partner, softmax, totals_times_outside, scale);                   \
    }                                                                                                 \
    extern "C" __global__ void psa_attention_grad_##SUFFIX(                                           \
        const T* grad_out, const T* features, const T* attention, const ACC* column_max,              \
        const ACC* inv_denominator, const ACC* delta, T* grad_attention, int batch, int channels,     \
        int height, int width, int mh, int mw, int sign, int attention_at_partner, int softmax,       \
        ACC scale) {                                                                                  \
        attention_grad<T, ACC>(grad_out, features, attention, column_max, inv_denominator, delta,     \
                               grad_attention, batch, channels, height, width, mh, mw, sign,          \
                               attention_at_partner, softmax, scale);                                 \
    }

PSA_AGGREGATE_INSTANCES(f32, float, float)
PSA_AGGREGATE_INSTANCES(f64, double, double)
PSA_AGGREGATE_INSTANCES(f16, Half, float)
PSA_AGGREGATE_INSTANCES(bf16, BFloat16, float)
