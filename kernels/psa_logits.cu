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
// cell of (a, s) is jj = s - a for collect, 63 - (s - a) for distribute)
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
// The per-position max and denominator (D, or l under 'window') are written to top and
// total [N, HW]: the backward (ops/aggregate_logits.py, recomputation in torch) needs them
// for distribute.
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

template <typename T>
__device__ void logits_forward(const T* __restrict__ features, const T* __restrict__ reduced,
                               const T* __restrict__ weight, const float* __restrict__ totals,
                               T* __restrict__ out, float* __restrict__ top, float* __restrict__ total,
                               int batch, int channels, int reduced_channels, int height, int width,
                               int mh, int mw, int sign, int softmax, float scale) {
    __shared__ float z[PSL_POSITIONS][PSL_CELLS + 1];          // the chunk's logits [a][jj]
    __shared__ unsigned short band[PSL_POSITIONS][PSL_PITCH];  // B [a][s], 16-bit
    __shared__ float run_max[PSL_POSITIONS], run_sum[PSL_POSITIONS], rescale[PSL_POSITIONS];
    __shared__ float unwritten[PSL_POSITIONS];                 // HW - n(q): rows of the column not written
    __shared__ float part_max[PSL_POSITIONS][8], part_sum[PSL_POSITIONS][8];

    const T tag = {0};
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int hw = height * width, half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int tiles_w = (width + PSL_POSITIONS - 1) / PSL_POSITIONS;
    const int h = (int)((blockIdx.x / tiles_w) % height);
    const long long n = blockIdx.x / ((long long)tiles_w * height);
    const int q0 = (int)(blockIdx.x % tiles_w) * PSL_POSITIONS;
    const int c_warp = blockIdx.y * PSL_CHANNELS + warp * PSL_WARP_CHANNELS;
    const T* f = features + n * channels * (long long)hw;            // [C, H, W]
    const T* u = reduced + n * reduced_channels * (long long)hw;     // [Cu, H, W]
    const long long cells = (long long)mh * mw;

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

            // 1. Logits of the chunk into z[a][jj]. Warp w: cell tile w/2 (16 cells).
            {
                const int mt = warp >> 1;
                const long long k_row = (long long)i * mw + j0 + mt * 16;  // first weight row of the tile
                const int rows_left = mw - (j0 + mt * 16);                 // valid rows of the tile
                if (sign > 0) {
                    // collect: Z[jj, a] = W_chunk @ U_tile, position tiles 2*(w%2), 2*(w%2)+1
                    float d[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
                    if (rows_left > 0) {
                        for (int kc = 0; kc < reduced_channels; kc += 16) {
                            unsigned fa[4], fb[2];
                            #pragma unroll
                            for (int r = 0; r < 4; ++r) {
                                const int row = g + 8 * (r & 1), col = kc + 2 * t + 8 * (r >> 1);
                                const long long wr = row < rows_left ? k_row + row : cells;  // cells: past the end
                                fa[r] = pair(element(weight, wr, col, cells, reduced_channels, reduced_channels),
                                             element(weight, wr, col + 1, cells, reduced_channels, reduced_channels));
                            }
                            #pragma unroll
                            for (int p = 0; p < 2; ++p) {
                                const int nt = 2 * (warp & 1) + p;
                                const int column = q0 + nt * 8 + g;
                                const long long at = (long long)h * width + column;
                                #pragma unroll
                                for (int r = 0; r < 2; ++r) {
                                    const int k = kc + 2 * t + 8 * r;
                                    unsigned short lo = 0, hi = 0;
                                    if (column < width) {
                                        if (k < reduced_channels) lo = u[k * (long long)hw + at].bits;
                                        if (k + 1 < reduced_channels) hi = u[(k + 1) * (long long)hw + at].bits;
                                    }
                                    fb[r] = pair(lo, hi);
                                }
                                mma_16816(d[p], fa, fb, tag);
                            }
                        }
                    }
                    #pragma unroll
                    for (int p = 0; p < 2; ++p) {
                        const int nt = 2 * (warp & 1) + p;
                        #pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            z[nt * 8 + 2 * t + (e & 1)][mt * 16 + g + 8 * (e >> 1)] = d[p][e];
                        }
                    }
                } else {
                    // distribute: Z[jj, s] = W_chunk @ U_segment, column tiles 6*(w%2) .. +5,
                    // then the band: z[a][jj] = Z[jj, a + 63 - jj]
                    float d[6][4];
                    #pragma unroll
                    for (int p = 0; p < 6; ++p) d[p][0] = d[p][1] = d[p][2] = d[p][3] = 0.f;
                    if (rows_left > 0) {
                        for (int kc = 0; kc < reduced_channels; kc += 16) {
                            unsigned fa[4], fb[2];
                            #pragma unroll
                            for (int r = 0; r < 4; ++r) {
                                const int row = g + 8 * (r & 1), col = kc + 2 * t + 8 * (r >> 1);
                                const long long wr = row < rows_left ? k_row + row : cells;
                                fa[r] = pair(element(weight, wr, col, cells, reduced_channels, reduced_channels),
                                             element(weight, wr, col + 1, cells, reduced_channels, reduced_channels));
                            }
                            #pragma unroll
                            for (int p = 0; p < 6; ++p) {
                                const int column = s0 + (6 * (warp & 1) + p) * 8 + g;
                                const long long at = (long long)rh * width + column;
                                #pragma unroll
                                for (int r = 0; r < 2; ++r) {
                                    const int k = kc + 2 * t + 8 * r;
                                    unsigned short lo = 0, hi = 0;
                                    if (column >= 0 && column < width) {
                                        if (k < reduced_channels) lo = u[k * (long long)hw + at].bits;
                                        if (k + 1 < reduced_channels) hi = u[(k + 1) * (long long)hw + at].bits;
                                    }
                                    fb[r] = pair(lo, hi);
                                }
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
            __syncthreads();

            // 2. Online softmax of position a over the chunk's written cells, and row a of B.
            // Cell jj of position a is written when j < mw and its partner column is inside.
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
            if (softmax == PSL_SOFTMAX_NONE) m_new = 0.f;
            const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[a] > 0) ? expf(-m_new) : 0.f;
            float sum = 0.f;
            for (int s = part; s < PSL_SEGMENT; s += 8) {
                const int jj = sign > 0 ? s - a : PSL_CELLS - 1 - (s - a);
                const int j = j0 + jj, rw = qw + sign * (j - half_w);
                float value = 0.f;
                if (jj >= 0 && jj < PSL_CELLS && qw < width && j < mw && rw >= 0 && rw < width) {
                    if (softmax == PSL_SOFTMAX_NONE) {
                        value = z[a][jj];
                    } else {
                        const float e = expf(z[a][jj] - m_new);
                        sum += e;
                        value = e - outside;
                    }
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
                const float alpha = (m_new == PSL_NEG_INF || softmax == PSL_SOFTMAX_NONE) ? 1.f : expf(m_old - m_new);
                run_sum[a] = run_sum[a] * alpha + chunk_sum;
                run_max[a] = m_new;
                rescale[a] = alpha;
            }
            __syncthreads();

            // 3. acc[c, a] = acc * rescale[a] + F_segment @ B^T.
            if (c_warp < channels) {  // warp-uniform
                if (softmax != PSL_SOFTMAX_NONE) {
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

    // 4. out = scale * (acc + exp(-m) S[c]) / D.
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
                if (softmax != PSL_SOFTMAX_NONE) {
                    const float m = run_max[pos];
                    const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[pos] > 0) ? expf(-m) : 0.f;
                    const float denominator = run_sum[pos] + unwritten[pos] * outside;
                    if (outside != 0.f) value += outside * totals[n * channels + c];
                    value /= denominator;
                }
                out[(n * channels + c) * (long long)hw + (long long)h * width + q0 + pos].bits = to_bits(value * scale, tag);
            }
        }
    }
    if (blockIdx.y == 0 && part == 0 && qw < width && softmax != PSL_SOFTMAX_NONE) {
        const float m = run_max[a];
        const float outside = (softmax == PSL_SOFTMAX_REFERENCE && unwritten[a] > 0) ? expf(-m) : 0.f;
        top[n * hw + (long long)h * width + qw] = m;
        total[n * hw + (long long)h * width + qw] = run_sum[a] + unwritten[a] * outside;
    }
}

#define PSL_INSTANCE(suffix, T)                                                                              \
    extern "C" __global__ void __launch_bounds__(PSL_THREADS) psa_logits_forward_##suffix(                \
        const T* features, const T* reduced, const T* weight, const float* totals, T* out, float* top,      \
        float* total, int batch, int channels, int reduced_channels, int height, int width, int mh, int mw, \
        int sign, int softmax, float scale) {                                                                \
        logits_forward<T>(features, reduced, weight, totals, out, top, total, batch, channels,              \
                          reduced_channels, height, width, mh, mw, sign, softmax, scale);                    \
    }

PSL_INSTANCE(f16, Half)
PSL_INSTANCE(bf16, BFloat16)
