// Fused PSA from the logits' factors on tensor cores (PSANet, Zhao et al., ECCV 2018):
//     out = F @ softmax(PSAMask(W U)) / nf
// without the over-completed map W U [N, mh*mw, H, W] or the [N, HW, HW] matrix. The
// derivation is in psanet_lite/ops/aggregate.py (the product and the softmax's unwritten
// rows) and psanet_lite/ops/aggregate_logits.py (the logits on the fly); names follow them.
//
// Output position q = (h, w), mask cell k = (i, j), offset off(k) = (i - hh, j - hw_),
// hh = (mh-1)/2, hw_ = (mw-1)/2; partner r = q + sign*off(k) (sign +1 collect, -1
// distribute). The cell's logit is z = W[k] . U[:, q] (collect: taken at q) or
// W[k] . U[:, r] (distribute: taken at the partner), and with P the softmax over the
// column q (the unwritten rows' exp(0) share P_o under 'reference'),
//     out[c, q] * nf = sum_k (P_k - P_o) F[c, r] + P_o S[c],     S[c] = sum over the map of F[c].
//
// A block owns 32 positions q0..q0+31 of one row h and 512 channels (blockIdx.y picks
// which 512). It walks the mask rows i whose partner row lies in the map and, in each,
// the cells in chunks of 64 consecutive j. For one chunk every partner of the 32
// positions lies in one segment of 95 consecutive columns of row h + sign*(i - hh), so
// with the band matrix B[a, s] (position a of the block, column s of the segment; the
// cell of (a, s) is jj = s - a for collect, 63 - (s - a) for distribute; the band is
// where 0 <= jj < 64)
//     logits:      collect     Z[jj, a] = W_chunk [64 x Cu] @ U_tile    [Cu x 32]
//                  distribute  Z[jj, s] = W_chunk [64 x Cu] @ U_segment [Cu x 96], band entries kept
//     aggregation: acc[c, a] += F_segment [C x 96] @ B^T [96 x 32]
// both on tensor cores (mma.sync m16n8k16, 16-bit inputs, float accumulators). The
// softmax runs online over the chunks, as in FlashAttention: per position a running max m
// and sum l; when m grows, acc and l are rescaled by exp(m_old - m_new). B holds
// exp(z - m) - exp(-m) under 'reference' where the column has unwritten rows (their max
// starts at 0, the unwritten value), exp(z - m) under 'window', z without softmax.
// At the end out = scale * (acc + exp(-m) S[c]) / D, D = l + unwritten * exp(-m).
//
// Kernels (one instance per 16-bit type, _f16 and _bf16):
//   psa_logits_aggregate  the forward above; it writes the per-position max m, denominator
//                         D (l under 'window') and unwritten-row weight P_o to top, total
//                         and outside [N, HW]. Run the other way round (partners in the
//                         opposite direction, weights from the partner column's saved
//                         statistics, values dOut) it is the features' gradient.
//   psa_logits_grad       the logits' gradient dZ for a block of rows, on tensor cores
//                         too; dW and dU are then matrix products (ops/aggregate_logits_cupy.py).
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
// lane = 4*g + t; A (16x16, row-major) registers hold (row g, cols 2t, 2t+1),
// (row g+8, cols 2t, 2t+1), (row g, cols 2t+8, 2t+9), (row g+8, cols 2t+8, 2t+9);
// B (16x8) registers hold (rows 2t, 2t+1, col g), (rows 2t+8, 2t+9, col g); the
// accumulators (row g, cols 2t, 2t+1), (row g+8, cols 2t, 2t+1). The lower column (or
// row) of a pair sits in the low 16 bits.
//
// Targets sm_80 and later (f16 and bf16); sm_75 runs f16 as two m16n8k8 products. The
// tests run this file on the CPU (tests/cuda_on_cpu.py defines PSA_ON_CPU and stands in
// for mma.sync and the two PTX conversions).

#define PSL_THREADS 256
#define PSL_WARPS 8
#define PSL_POSITIONS 32     // output positions per block (consecutive, one row)
#define PSL_CELLS 64         // mask cells per chunk (consecutive j of one mask row)
#define PSL_SEGMENT 96       // partner columns per chunk: 32 + 64 - 1 = 95, padded to 16
#define PSL_PITCH 104        // 16-bit elements per band row: even (32-bit pairs), staggers banks
#define PSL_WARP_CHANNELS 64 // output channels per warp: 4 tiles of 16
#define PSL_CHANNELS (PSL_WARPS * PSL_WARP_CHANNELS)
#define PSL_NEG_INF __int_as_float(0xff800000)
#define PSL_SOFTMAX_NONE 0
#define PSL_SOFTMAX_REFERENCE 1
#define PSL_SOFTMAX_WINDOW 2

struct Half { unsigned short bits; };
struct BFloat16 { unsigned short bits; };

__device__ __forceinline__ float to_float(unsigned short bits, Half) {
    float f;
#ifdef PSA_ON_CPU
    f = psa_half_to_float(bits);
#else
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
#endif
    return f;
}
__device__ __forceinline__ float to_float(unsigned short bits, BFloat16) {
    return __uint_as_float(((unsigned int)bits) << 16);
}
__device__ __forceinline__ unsigned short to_bits(float v, Half) {
    unsigned short h;
#ifdef PSA_ON_CPU
    h = psa_float_to_half(v);
#else
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
#endif
    return h;
}
__device__ __forceinline__ unsigned short to_bits(float v, BFloat16) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays a (quiet) NaN
    u += 0x7fffu + ((u >> 16) & 1u);                     // round to nearest, ties to even
    return (unsigned short)(u >> 16);
}

// d += a b on the warp's fragments (see the header for the layouts).
__device__ __forceinline__ void mma_16816(float* d, const unsigned* a, const unsigned* b, Half) {
#if defined(PSA_ON_CPU)
    psa_mma_16816(d, a, b, 0);
#elif __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    // sm_75: the k = 0..7 half, then the k = 8..15 half (A registers 0,1 then 2,3).
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[0]), "r"(a[1]), "r"(b[0]));
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]) : "r"(a[2]), "r"(a[3]), "r"(b[1]));
#endif
}
__device__ __forceinline__ void mma_16816(float* d, const unsigned* a, const unsigned* b, BFloat16) {
#if defined(PSA_ON_CPU)
    psa_mma_16816(d, a, b, 1);
#elif __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // bf16 tensor cores need sm_80; the Python side never launches this below it
#endif
}

__device__ __forceinline__ unsigned pair(unsigned short low, unsigned short high) {
    return (unsigned)low | ((unsigned)high << 16);
}

// Element (row, col) of a row-major matrix with `cols` columns, 0 outside rows x cols.
template <typename T>
__device__ __forceinline__ unsigned short element(const T* m, long long row, int col, long long rows, int cols,
                                                  long long pitch) {
    return (row < rows && col < cols) ? m[row * pitch + col].bits : (unsigned short)0;
}

// Mask indices m whose partner coordinate pos + sign*(m - half) lies in 0..size-1, as [lo, hi].
__device__ __forceinline__ void cell_range(int pos, int size, int half, int msize, int sign, int* lo, int* hi) {
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

// Weight rows of the chunk's 16-cell tile `mt` as an A fragment (rows past mw or past
// the weight's end read 0): W[i*mw + j0 + mt*16 + row, kc + col].
template <typename T>
__device__ __forceinline__ void weight_fragment(unsigned* fa, const T* weight, long long k_row, int rows_left,
                                                long long cells, int reduced_channels, int kc, int g, int t) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const int row = g + 8 * (r & 1), col = kc + 2 * t + 8 * (r >> 1);
        const long long wr = row < rows_left ? k_row + row : cells;  // cells: past the end, reads 0
        fa[r] = pair(element(weight, wr, col, cells, reduced_channels, reduced_channels),
                     element(weight, wr, col + 1, cells, reduced_channels, reduced_channels));
    }
}

// U[kc + 2t (+1) (+8), row_at + column] as a B fragment, 0 off the map or past Cu.
template <typename T>
__device__ __forceinline__ void column_fragment(unsigned* fb, const T* u, long long hw, long long row_at, int column,
                                                int width, int reduced_channels, int kc, int t) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int k = kc + 2 * t + 8 * r;
        unsigned short lo = 0, hi = 0;
        if (column >= 0 && column < width) {
            if (k < reduced_channels) lo = u[k * hw + row_at + column].bits;
            if (k + 1 < reduced_channels) hi = u[(k + 1) * hw + row_at + column].bits;
        }
        fb[r] = pair(lo, hi);
    }
}

// The chunk's logits z[a][jj] (cells j0 + jj of mask row i, positions q0 + a of row h).
// Taken at the block's own positions (at_partner = 0): Z[jj, a] = W_chunk @ U_tile, warp w
// computing cell tile w/2 and position tiles 2*(w%2), 2*(w%2)+1. Taken at the partners
// (at_partner = 1, partner row rh, segment from column s0, cell jj of position a at segment
// column a + 63 - jj): Z[jj, s] = W_chunk @ U_segment, warp w computing cell tile w/2 and
// segment tiles 6*(w%2) .. +5, of which the band is kept.
template <typename T>
__device__ void chunk_logits(float (*z)[PSL_CELLS + 1], const T* weight, const T* u, int at_partner, int i, int j0,
                             int h, int rh, int q0, int s0, int height, int width, int mw, long long cells,
                             int reduced_channels) {
    const T tag = {0};
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const long long hw = (long long)height * width;
    const int mt = warp >> 1;
    const long long k_row = (long long)i * mw + j0 + mt * 16;  // first weight row of the tile
    const int rows_left = mw - (j0 + mt * 16);                 // valid rows of the tile
    if (!at_partner) {
        float d[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
        if (rows_left > 0) {
            for (int kc = 0; kc < reduced_channels; kc += 16) {
                unsigned fa[4], fb[2];
                weight_fragment(fa, weight, k_row, rows_left, cells, reduced_channels, kc, g, t);
#pragma unroll
                for (int p = 0; p < 2; ++p) {
                    const int nt = 2 * (warp & 1) + p;
                    column_fragment(fb, u, hw, (long long)h * width, q0 + nt * 8 + g, width, reduced_channels, kc, t);
                    mma_16816(d[p], fa, fb, tag);
                }
            }
        }
#pragma unroll
        for (int p = 0; p < 2; ++p) {
            const int nt = 2 * (warp & 1) + p;
#pragma unroll
            for (int e = 0; e < 4; ++e) z[nt * 8 + 2 * t + (e & 1)][mt * 16 + g + 8 * (e >> 1)] = d[p][e];
        }
    } else {
        float d[6][4];
#pragma unroll
        for (int p = 0; p < 6; ++p) d[p][0] = d[p][1] = d[p][2] = d[p][3] = 0.f;
        if (rows_left > 0) {
            for (int kc = 0; kc < reduced_channels; kc += 16) {
                unsigned fa[4], fb[2];
                weight_fragment(fa, weight, k_row, rows_left, cells, reduced_channels, kc, g, t);
#pragma unroll
                for (int p = 0; p < 6; ++p) {
                    const int column = s0 + (6 * (warp & 1) + p) * 8 + g;
                    column_fragment(fb, u, hw, (long long)rh * width, column, width, reduced_channels, kc, t);
                    mma_16816(d[p], fa, fb, tag);
                }
            }
        }
#pragma unroll
        for (int p = 0; p < 6; ++p) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int jj = mt * 16 + g + 8 * (e >> 1);
                const int s = (6 * (warp & 1) + p) * 8 + 2 * t + (e & 1);
                const int pos = s - (PSL_CELLS - 1 - jj);
                if (pos >= 0 && pos < PSL_POSITIONS) z[pos][jj] = d[p][e];
            }
        }
    }
}

// out[c, q] = scale * (sum over the written cells k of weight(k, q) * values[c, partner]
//                      + extra[c, q]),
// the aggregation and, run the other way, its feature gradient:
//   forward    (stats_given = 0): values = F, the softmax online over the chunks, weight =
//              P_k - P_o before the division by D, extra = P_o * S[c] (totals = S);
//              writes top = m, total = D and outside = P_o per position.
//   grad of F  (stats_given = 1): values = dOut, partners in the other direction, weight =
//              P_k(partner) - P_o(partner) from the forward's top, total and outside of the
//              partner column, extra = totals[c] = sum_q P_o(q) dOut[c, q].
// Without softmax the weight is the logit and there is no extra term.
template <typename T>
__device__ void logits_aggregate(const T* __restrict__ values, const T* __restrict__ reduced,
                                 const T* __restrict__ weight, const float* __restrict__ totals,
                                 T* __restrict__ out, float* __restrict__ top, float* __restrict__ total,
                                 float* __restrict__ outside_weight, int batch, int channels, int reduced_channels,
                                 int height, int width, int mh, int mw, int sign, int softmax, int stats_given,
                                 float scale) {
    __shared__ float z[PSL_POSITIONS][PSL_CELLS + 1];          // the chunk's logits [a][jj]
    __shared__ unsigned short band[PSL_POSITIONS][PSL_PITCH];  // B [a][s], 16-bit
    __shared__ float run_max[PSL_POSITIONS], run_sum[PSL_POSITIONS], rescale[PSL_POSITIONS];
    __shared__ float unwritten[PSL_POSITIONS];                 // HW - n(q): rows of the column not written
    __shared__ float part_max[PSL_POSITIONS][8], part_sum[PSL_POSITIONS][8];
    __shared__ float seg_max[PSL_SEGMENT], seg_inverse[PSL_SEGMENT], seg_outside[PSL_SEGMENT];

    const T tag = {0};
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSL_POSITIONS - 1) / PSL_POSITIONS;
    const int h = (int)((blockIdx.x / tiles_w) % height);
    const long long n = blockIdx.x / ((long long)tiles_w * height);
    const int q0 = (int)(blockIdx.x % tiles_w) * PSL_POSITIONS;
    const int c_warp = blockIdx.y * PSL_CHANNELS + warp * PSL_WARP_CHANNELS;
    const T* f = values + n * channels * (long long)hw;              // [C, H, W]
    const T* u = reduced + n * reduced_channels * (long long)hw;     // [Cu, H, W]
    const long long cells = (long long)mh * mw;
    const int online = softmax != PSL_SOFTMAX_NONE && !stats_given;

    // The softmax threads: 8 per position a.
    const int a = threadIdx.x >> 3, part = threadIdx.x & 7;
    const int qw = q0 + a;
    int i_lo, i_hi, j_lo, j_hi;
    cell_range(h, height, half_h, mh, sign, &i_lo, &i_hi);  // mask rows with the partner row inside
    cell_range(qw < width ? qw : 0, width, half_w, mw, sign, &j_lo, &j_hi);
    if (part == 0) {
        const float missing = (float)((long long)hw - (long long)(i_hi - i_lo + 1) * (j_hi - j_lo + 1));
        unwritten[a] = missing;
        // Under 'reference' the unwritten rows hold 0 and join the max from the start.
        run_max[a] = (softmax == PSL_SOFTMAX_REFERENCE && missing > 0) ? 0.f : PSL_NEG_INF;
        run_sum[a] = 0.f;
    }

    float acc[4][4][4];  // [channel tile][position tile][fragment]
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
    __syncthreads();

    for (int i = i_lo; i <= i_hi; ++i) {
        const int rh = h + sign * (i - half_h);  // partner row, inside the map
        for (int j0 = 0; j0 < mw; j0 += PSL_CELLS) {
            // partner columns of the chunk: s0 .. s0 + PSL_SEGMENT - 1
            const int s0 = sign > 0 ? q0 + j0 - half_w : q0 - (j0 + PSL_CELLS - 1) + half_w;
            if (s0 + PSL_POSITIONS + PSL_CELLS - 2 < 0 || s0 >= width) continue;  // block-uniform

            // 1. The chunk's logits into z (taken at the partners in the sign < 0 direction), and
            // with given statistics those of the segment's columns.
            chunk_logits(z, weight, u, sign < 0, i, j0, h, rh, q0, s0, height, width, mw, cells, reduced_channels);
            if (stats_given && softmax != PSL_SOFTMAX_NONE && threadIdx.x < PSL_SEGMENT) {
                const int column = s0 + threadIdx.x;
                const bool inside = column >= 0 && column < width;
                const long long at = n * hw + (long long)rh * width + column;
                seg_max[threadIdx.x] = inside ? top[at] : 0.f;
                seg_inverse[threadIdx.x] = inside ? 1.f / total[at] : 0.f;
                seg_outside[threadIdx.x] = inside ? outside_weight[at] : 0.f;
            }
            __syncthreads();

            // 2. Row a of B. Cell jj of position a is written when j < mw and its partner
            // column is inside the map.
            if (!online) {
                for (int s = part; s < PSL_SEGMENT; s += 8) {
                    const int jj = sign > 0 ? s - a : PSL_CELLS - 1 - (s - a);
                    const int j = j0 + jj, rw = qw + sign * (j - half_w);
                    float value = 0.f;
                    if (jj >= 0 && jj < PSL_CELLS && qw < width && j < mw && rw >= 0 && rw < width) {
                        value = z[a][jj];
                        if (softmax != PSL_SOFTMAX_NONE) value = expf(value - seg_max[s]) * seg_inverse[s] - seg_outside[s];
                    }
                    band[a][s] = to_bits(value, tag);
                }
            } else {
                // The online softmax of position a over the chunk's written cells.
                const float m_old = run_max[a];
                float m_chunk = PSL_NEG_INF;
                for (int jj = part; jj < PSL_CELLS; jj += 8) {
                    const int j = j0 + jj, rw = qw + sign * (j - half_w);
                    if (qw < width && j < mw && rw >= 0 && rw < width) m_chunk = fmaxf(m_chunk, z[a][jj]);
                }
                part_max[a][part] = m_chunk;
                __syncthreads();
                float m_new = m_old;
#pragma unroll
                for (int p = 0; p < 8; ++p) m_new = fmaxf(m_new, part_max[a][p]);
                const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[a] > 0) ? expf(-m_new) : 0.f;
                float sum = 0.f;
                for (int s = part; s < PSL_SEGMENT; s += 8) {
                    const int jj = sign > 0 ? s - a : PSL_CELLS - 1 - (s - a);
                    const int j = j0 + jj, rw = qw + sign * (j - half_w);
                    float value = 0.f;
                    if (jj >= 0 && jj < PSL_CELLS && qw < width && j < mw && rw >= 0 && rw < width) {
                        const float e = expf(z[a][jj] - m_new);
                        sum += e;
                        value = e - outside;
                    }
                    band[a][s] = to_bits(value, tag);
                }
                part_sum[a][part] = sum;
                __syncthreads();
                if (part == 0) {
                    float chunk_sum = 0.f;
#pragma unroll
                    for (int p = 0; p < 8; ++p) chunk_sum += part_sum[a][p];
                    // m_old = -inf (nothing seen yet): exp(-inf) = 0 clears nothing that exists
                    const float alpha = m_new == PSL_NEG_INF ? 1.f : expf(m_old - m_new);
                    run_sum[a] = run_sum[a] * alpha + chunk_sum;
                    run_max[a] = m_new;
                    rescale[a] = alpha;
                }
            }
            __syncthreads();

            // 3. acc[c, a] = acc * rescale[a] + values_segment @ B^T.
            if (c_warp < channels) {  // warp-uniform
                if (online) {
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt) {
                        const float r0 = rescale[nt * 8 + 2 * t], r1 = rescale[nt * 8 + 2 * t + 1];
#pragma unroll
                        for (int mt = 0; mt < 4; ++mt) {
                            acc[mt][nt][0] *= r0;
                            acc[mt][nt][1] *= r1;
                            acc[mt][nt][2] *= r0;
                            acc[mt][nt][3] *= r1;
                        }
                    }
                }
                const long long row_at = (long long)rh * width;
                for (int ks = 0; ks < PSL_SEGMENT; ks += 16) {
                    unsigned fb[4][2];
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt) {
                        const unsigned short* row = band[nt * 8 + g];
                        fb[nt][0] = pair(row[ks + 2 * t], row[ks + 2 * t + 1]);
                        fb[nt][1] = pair(row[ks + 8 + 2 * t], row[ks + 9 + 2 * t]);
                    }
#pragma unroll
                    for (int mt = 0; mt < 4; ++mt) {
                        if (c_warp + mt * 16 >= channels) break;  // warp-uniform
                        unsigned fa[4];
#pragma unroll
                        for (int r = 0; r < 4; ++r) {
                            const int c = c_warp + mt * 16 + g + 8 * (r & 1);
                            const int column = s0 + ks + 2 * t + 8 * (r >> 1);
                            unsigned short lo = 0, hi = 0;
                            if (c < channels) {
                                const T* fc = f + (long long)c * hw + row_at;
                                if (column >= 0 && column < width) lo = fc[column].bits;
                                if (column + 1 >= 0 && column + 1 < width) hi = fc[column + 1].bits;
                            }
                            fa[r] = pair(lo, hi);
                        }
#pragma unroll
                        for (int nt = 0; nt < 4; ++nt) mma_16816(acc[mt][nt], fa, fb[nt], tag);
                    }
                }
            }
            __syncthreads();
        }
    }

    // 4. forward: out = scale * (acc + exp(-m) S[c]) / D; grad of F: scale * (acc + totals[c]).
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int c = c_warp + mt * 16 + g + 8 * (e >> 1);
                const int pos = nt * 8 + 2 * t + (e & 1);
                if (c >= channels || q0 + pos >= width) continue;
                float value = acc[mt][nt][e];
                if (online) {
                    const float m = run_max[pos];
                    const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[pos] > 0) ? expf(-m) : 0.f;
                    const float denominator = run_sum[pos] + unwritten[pos] * outside;
                    if (outside != 0.f) value += outside * totals[n * channels + c];
                    value /= denominator;
                } else if (totals != nullptr) {
                    value += totals[n * channels + c];
                }
                out[(n * channels + c) * (long long)hw + (long long)h * width + q0 + pos].bits = to_bits(value * scale, tag);
            }
        }
    }
    if (online && blockIdx.y == 0 && part == 0 && qw < width) {
        const float m = run_max[a];
        const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[a] > 0) ? expf(-m) : 0.f;
        const float denominator = run_sum[a] + unwritten[a] * outside;
        const long long at = n * hw + (long long)h * width + qw;
        top[at] = m;
        total[at] = denominator;
        outside_weight[at] = outside / denominator;
    }
}

// The gradient of the logits, dZ[p, k] for the positions p of rows row0 .. row0 + rows - 1,
// written to grad_logits [N, rows*W, mh*mw] (cells that are not written stay as they are: 0).
// Every logit z_k(p) = W[k] . U[:, p] links p to o = p + off(k): in collect p is the column
// q and o the row r_k(q) of the matrix, in distribute p is r_k(q) and o the column q. So
//     dP = x[:, p] . y[:, o]    (collect: x = dOut, y = F; distribute: x = F, y = dOut),
//     dZ = P (scale * dP - delta(q)),   P = exp(z - m(q)) / D(q),   (no softmax: scale * dP)
// with m, D and delta = sum_c dOut[c, q] out[c, q] of the column q (p in collect, o in
// distribute). A block: 32 positions of one row, mask rows and 64-cell chunks as in
// logits_aggregate with sign +1; Z = W_chunk @ U_tile and dP = x_tile^T @ y_segment
// [32 x C] by [C x 96] (warp w: position tile w%2, segment tiles 3*(w/2) .. +2) on tensor cores.
template <typename T>
__device__ void logits_grad(const T* __restrict__ grad_out, const T* __restrict__ features,
                            const T* __restrict__ reduced, const T* __restrict__ weight,
                            const float* __restrict__ top, const float* __restrict__ total,
                            const float* __restrict__ delta, T* __restrict__ grad_logits, int batch, int channels,
                            int reduced_channels, int height, int width, int mh, int mw, int collect, int softmax,
                            int row0, int rows, float scale) {
    __shared__ float z[PSL_POSITIONS][PSL_CELLS + 1];   // the chunk's logits [a][jj]
    __shared__ float dp[PSL_POSITIONS][PSL_CELLS + 1];  // dP of the chunk's cells [a][jj]
    __shared__ float col_max[PSL_SEGMENT], col_inverse[PSL_SEGMENT], col_delta[PSL_SEGMENT];

    const T tag = {0};
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSL_POSITIONS - 1) / PSL_POSITIONS;
    const int h = row0 + (int)((blockIdx.x / tiles_w) % rows);
    const long long n = blockIdx.x / ((long long)tiles_w * rows);
    const int q0 = (int)(blockIdx.x % tiles_w) * PSL_POSITIONS;
    const T* x = (collect ? grad_out : features) + n * channels * (long long)hw;  // at p
    const T* y = (collect ? features : grad_out) + n * channels * (long long)hw;  // at o
    const T* u = reduced + n * reduced_channels * (long long)hw;
    const long long cells = (long long)mh * mw;
    const int a = threadIdx.x >> 3, part = threadIdx.x & 7;
    const int pw = q0 + a;
    int i_lo, i_hi;
    cell_range(h, height, half_h, mh, 1, &i_lo, &i_hi);

    for (int i = i_lo; i <= i_hi; ++i) {
        const int oh = h + (i - half_h);  // row of o, inside the map
        for (int j0 = 0; j0 < mw; j0 += PSL_CELLS) {
            const int s0 = q0 + j0 - half_w;  // o of position a, cell jj: column s0 + a + jj
            if (s0 + PSL_POSITIONS + PSL_CELLS - 2 < 0 || s0 >= width) continue;  // block-uniform

            chunk_logits(z, weight, u, 0, i, j0, h, oh, q0, s0, height, width, mw, cells, reduced_channels);
            // dP band: D[a, s] = x_tile^T @ y_segment, kept where jj = s - a is a cell of the chunk
            {
                const int mt = warp & 1;
                float d[3][4];
#pragma unroll
                for (int p = 0; p < 3; ++p) d[p][0] = d[p][1] = d[p][2] = d[p][3] = 0.f;
                for (int kc = 0; kc < channels; kc += 16) {
                    unsigned fa[4], fb[2];
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const int column = q0 + mt * 16 + g + 8 * (r & 1);
                        const int c = kc + 2 * t + 8 * (r >> 1);
                        unsigned short lo = 0, hi = 0;
                        if (column < width) {
                            const long long at = (long long)h * width + column;
                            if (c < channels) lo = x[c * (long long)hw + at].bits;
                            if (c + 1 < channels) hi = x[(c + 1) * (long long)hw + at].bits;
                        }
                        fa[r] = pair(lo, hi);
                    }
#pragma unroll
                    for (int p = 0; p < 3; ++p) {
                        const int column = s0 + (3 * (warp >> 1) + p) * 8 + g;
                        column_fragment(fb, y, hw, (long long)oh * width, column, width, channels, kc, t);
                        mma_16816(d[p], fa, fb, tag);
                    }
                }
#pragma unroll
                for (int p = 0; p < 3; ++p) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int pos = mt * 16 + g + 8 * (e >> 1);
                        const int s = (3 * (warp >> 1) + p) * 8 + 2 * t + (e & 1);
                        const int jj = s - pos;
                        if (jj >= 0 && jj < PSL_CELLS) dp[pos][jj] = d[p][e];
                    }
                }
            }
            // the column statistics: of p itself (collect) or of o along the segment (distribute)
            if (softmax != PSL_SOFTMAX_NONE && threadIdx.x < PSL_SEGMENT) {
                const int column = collect ? q0 + threadIdx.x : s0 + threadIdx.x;
                const int row = collect ? h : oh;
                const bool inside = column >= 0 && column < width && (!collect || threadIdx.x < PSL_POSITIONS);
                const long long at = n * hw + (long long)row * width + column;
                col_max[threadIdx.x] = inside ? top[at] : 0.f;
                col_inverse[threadIdx.x] = inside ? 1.f / total[at] : 0.f;
                col_delta[threadIdx.x] = inside ? delta[at] : 0.f;
            }
            __syncthreads();

            for (int jj = part; jj < PSL_CELLS; jj += 8) {
                const int j = j0 + jj, ow = pw + (j - half_w);
                if (pw >= width || j >= mw || ow < 0 || ow >= width) continue;
                float value = scale * dp[a][jj];
                if (softmax != PSL_SOFTMAX_NONE) {
                    const int s = collect ? a : a + jj;  // where the column's statistics sit
                    const float probability = expf(z[a][jj] - col_max[s]) * col_inverse[s];
                    value = probability * (value - col_delta[s]);
                }
                const long long p_local = (long long)(h - row0) * width + pw;
                grad_logits[(n * rows * width + p_local) * cells + (long long)i * mw + j].bits = to_bits(value, tag);
            }
            __syncthreads();
        }
    }
}

#define PSL_INSTANCE(suffix, T)                                                                               \
    extern "C" __global__ void __launch_bounds__(PSL_THREADS) psa_logits_aggregate_##suffix(                 \
        const T* values, const T* reduced, const T* weight, const float* totals, T* out, float* top,         \
        float* total, float* outside, int batch, int channels, int reduced_channels, int height, int width,  \
        int mh, int mw, int sign, int softmax, int stats_given, float scale) {                               \
        logits_aggregate<T>(values, reduced, weight, totals, out, top, total, outside, batch, channels,      \
                            reduced_channels, height, width, mh, mw, sign, softmax, stats_given, scale);     \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(PSL_THREADS) psa_logits_grad_##suffix(                      \
        const T* grad_out, const T* features, const T* reduced, const T* weight, const float* top,           \
        const float* total, const float* delta, T* grad_logits, int batch, int channels, int reduced_channels, \
        int height, int width, int mh, int mw, int collect, int softmax, int row0, int rows, float scale) {  \
        logits_grad<T>(grad_out, features, reduced, weight, top, total, delta, grad_logits, batch, channels, \
                       reduced_channels, height, width, mh, mw, collect, softmax, row0, rows, scale);        \
    }

PSL_INSTANCE(f16, Half)
PSL_INSTANCE(bf16, BFloat16)
