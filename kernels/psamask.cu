// PSAMask (PSANet, Zhao et al., ECCV 2018): over-completed map A [N, mh*mw, H, W]
// <-> attention matrix Y [N, HW, HW] (stored as [N, H*W, H, W]).
//
// Closed form for Y[n, p, q], p = (ph, pw), q = (qh, qw), hh = (mh-1)/2, hw = (mw-1)/2:
//   collect:    Y[p, q] = A[(ph-qh+hh)*mw + (pw-qw+hw), qh, qw]
//   distribute: Y[p, q] = A[(qh-ph+hh)*mw + (qw-pw+hw), ph, pw]
// and 0 where the mask cell falls outside 0..mh-1 x 0..mw-1.
//
// PSAMask only moves numbers, so the kernels move raw bits: one instance per element
// size (2 bytes: float16/bfloat16, 4: float32, 8: float64), no floating-point types
// and no fp16 headers. Bit pattern 0 is +0.0 in every one of these formats.
//
// Slabs. Fix an image n, the position's map row h and a mask row i; the target's row is
// then th = h + i - hh, and what is left is a 2-D move between two slabs, each with rows
// HW elements apart and contiguous columns:
//   A-slab  A[n, i, j, h, w]                       rows j (mw), columns w (W)
//   Y-slab  collect:    Y[n, th, tw, h, w]         rows tw (W), columns w (W)
//           distribute: Y[n, h, w, th, tw]         rows w (W), columns tw (W)
// linked by tw = w + j - hw. In collect both slabs run along w and an element moves along
// a diagonal (a skew); in distribute it also crosses from a column to a row (a transpose
// with a skew). Either way one side would be read or written HW elements apart, which is
// what a shared-memory tile avoids.
//
// Grid (2-D). blockIdx.x is the slab: (n, th, h) forward, where a th whose mask row i falls
// outside the mask has an all-zero Y-slab; (n, i, h) backward, where an i whose th falls off
// the map has an all-zero gradient slab. blockIdx.y is a TILE-wide column of the slab the
// block writes (the destination), which the block walks down one TILE x TILE tile at a
// time. For each tile it
//   1. loads from the source slab the elements the tile needs (a parallelogram inside a
//      (2*TILE-1) x TILE rectangle), reading along the source's contiguous axis, into
//      shared memory;
//   2. writes the tile along the destination's contiguous axis, each element from shared
//      memory or 0.
// So reads and writes are both coalesced; every destination element is written exactly
// once, zeros included (no fill pass, no atomics); every source element that lands in the
// destination is read once, and the others are not read at all.
//
// Vectors: the _v<V> instances move V elements (16 bytes) per global access; the launcher
// (psanet_lite/ops/psa_mask_cupy.py) picks them when W is a multiple of V and both pointers
// are 16-byte aligned, so no vector straddles a row, and _v1 otherwise.
// Index math is 32-bit inside a slab (the launcher checks max(mw, W) * H*W < 2^31); only
// the slab's base offset is 64-bit.

#define PSAMASK_TILE 32      // a block writes a TILE-wide column of its destination slab, TILE rows at a time
#define PSAMASK_THREADS 128  // threads per block: 4 warps

template <int BYTES> struct Access;  // the type of one global access of BYTES bytes
template <> struct Access<2> { typedef unsigned short type; };
template <> struct Access<4> { typedef unsigned int type; };
template <> struct Access<8> { typedef unsigned long long type; };
template <> struct Access<16> { typedef uint4 type; };

template <typename E, int V> union Pack {  // V elements of type E, moved as one access
    typename Access<sizeof(E) * V>::type vector;
    E element[V];
};

// Global memory is read and written only here, V elements at a time. (tests/test_kernels_psamask.py
// adds trace calls to these lines and to the two shared-memory accesses below, by their text.)
template <typename E, int V>
__device__ __forceinline__ Pack<E, V> load_global(const E* p) {
    Pack<E, V> pack;
    pack.vector = *reinterpret_cast<const typename Access<sizeof(E) * V>::type*>(p);
    return pack;
}

template <typename E, int V>
__device__ __forceinline__ void store_global(E* p, const Pack<E, V>& pack) {
    *reinterpret_cast<typename Access<sizeof(E) * V>::type*>(p) = pack.vector;
}

// The source tile of the four moves. Destination element (R, C) of the tile (local
// coordinates, 0..TILE-1) comes from source-tile element (sr, sc):
//   forward  collect     Y[tw][w] = A[tw - w + hw][w]    sr = R - C + TILE-1, sc = C
//   backward collect     dA[j][w] = dY[j + w - hw][w]    sr = R + C,          sc = C
//   forward  distribute  Y[w][tw] = A[tw - w + hw][w]    sr = C - R + TILE-1, sc = R
//   backward distribute  dA[j][w] = dY[w][j + w - hw]    sr = C,              sc = R + C + shift
// The first three read (2*TILE-1) x TILE source elements; backward distribute reads
// TILE x (2*TILE-1) with its first column rounded down to a multiple of V (by `shift`) so
// its vectors stay aligned, hence 2*TILE + V columns.
template <bool BACKWARD, bool DISTRIBUTE, int V> struct SourceTile {
    static constexpr bool WIDE = BACKWARD && DISTRIBUTE;
    static constexpr int ROWS = WIDE ? PSAMASK_TILE : 2 * PSAMASK_TILE - 1;
    static constexpr int COLUMNS = WIDE ? 2 * PSAMASK_TILE + V : PSAMASK_TILE;
    // Shared-memory row length: the padding keeps bank conflicts at most 4-way for the
    // diagonal and transposed reads (chosen by counting banks for every instance; the
    // count is a test, tests/test_kernels_psamask.py).
    static constexpr int PITCH = COLUMNS + (!BACKWARD && DISTRIBUTE ? V : (WIDE && V == 1 ? 1 : 0));
};

template <bool BACKWARD, bool DISTRIBUTE>
__device__ __forceinline__ void source_of(int R, int C, int shift, int& sr, int& sc) {
    if (!DISTRIBUTE) {
        sr = BACKWARD ? R + C : R - C + PSAMASK_TILE - 1;
        sc = C;
    } else if (!BACKWARD) {
        sr = C - R + PSAMASK_TILE - 1;
        sc = R;
    } else {
        sr = C;
        sc = R + C + shift;
    }
}

// The inverse of source_of: where source-tile element (sr, sc) goes in the destination tile.
template <bool BACKWARD, bool DISTRIBUTE>
__device__ __forceinline__ void destination_of(int sr, int sc, int shift, int& R, int& C) {
    if (!DISTRIBUTE) {
        C = sc;
        R = BACKWARD ? sr - sc : sr + sc - (PSAMASK_TILE - 1);
    } else if (!BACKWARD) {
        R = sc;
        C = sr + sc - (PSAMASK_TILE - 1);
    } else {
        C = sr;
        R = sc - shift - sr;
    }
}

template <typename E, int V, bool BACKWARD, bool DISTRIBUTE>
__device__ __forceinline__ void psamask_tile(const E* __restrict__ source, E* __restrict__ destination,
                                             int height, int width, int mh, int mw) {
    typedef SourceTile<BACKWARD, DISTRIBUTE, V> Tile;
    constexpr int T = PSAMASK_TILE;
    constexpr int LOAD_SLOTS = Tile::ROWS * (Tile::COLUMNS / V);  // vectors of the source tile
    constexpr int LOAD_STEPS = (LOAD_SLOTS + PSAMASK_THREADS - 1) / PSAMASK_THREADS;
    constexpr int STORE_SLOTS = T * (T / V);                      // vectors of the destination tile
    constexpr int WORDS = (Tile::ROWS * Tile::PITCH * (int)sizeof(E) + 15) / 16;
    __shared__ uint4 words[WORDS];  // uint4: 16-byte aligned for vector stores
    E* tile = reinterpret_cast<E*>(words);

    const int hw = height * width;
    const int half_h = (mh - 1) / 2, half_w = (mw - 1) / 2;
    const int slab = blockIdx.x;
    const int pairs = BACKWARD ? mh : height;  // slabs per (n, h): mask rows i or target rows th
    const int h = slab % height;
    const int pair = slab / height % pairs;
    const int n = slab / height / pairs;
    const int i = BACKWARD ? pair : pair - h + half_h;
    const int th = BACKWARD ? h + pair - half_h : pair;
    const bool linked = 0 <= i && i < mh && 0 <= th && th < height;
    const long long a_slab = ((long long)n * mh + i) * mw * hw + h * width;
    const long long y_slab = DISTRIBUTE ? ((long long)n * height + h) * width * hw + th * width
                                        : ((long long)n * height + th) * width * hw + h * width;
    const int source_rows = BACKWARD ? width : mw, destination_rows = BACKWARD ? mw : width;

    const E* src = source + (linked ? (BACKWARD ? y_slab : a_slab) : 0);  // read only when linked
    E* dst = destination + (BACKWARD ? a_slab : y_slab);

    // The block's column of tiles, walked down one tile at a time; (r0, c0) is the tile's
    // corner in the destination slab, (row0, col0) the source tile's in the source slab.
    const int c0 = blockIdx.y * T;
    for (int r0 = 0; r0 < destination_rows; r0 += T) {
        // threadIdx.x through an empty asm, once per tile: without it the compiler keeps the
        // index math of every slot of the unrolled loops below alive across the tiles, in
        // registers (some 200 per thread instead of 32-43, a quarter of the blocks per SM).
        int thread = threadIdx.x;
        asm volatile("" : "+r"(thread));
        int row0, col0, shift = 0;
        if (!DISTRIBUTE) {
            row0 = BACKWARD ? r0 + c0 - half_w : r0 - c0 - (T - 1) + half_w;
            col0 = c0;
        } else if (!BACKWARD) {
            row0 = c0 - r0 - (T - 1) + half_w;
            col0 = r0;
        } else {
            row0 = c0;
            col0 = (r0 + c0 - half_w) & ~(V - 1);  // V is a power of 2: rounds down, negatives too
            shift = r0 + c0 - half_w - col0;
        }
        // Whether the source tile overlaps the source slab at all (uniform over the block).
        const bool any = linked && row0 < source_rows && row0 + Tile::ROWS > 0 && col0 < width &&
                         col0 + Tile::COLUMNS > 0;

        if (any) {
            // All of a thread's loads first, then its shared stores: the loads fly together.
            Pack<E, V> packs[LOAD_STEPS];
            bool loaded[LOAD_STEPS];
#pragma unroll
            for (int k = 0; k < LOAD_STEPS; ++k) {
                const int slot = k * PSAMASK_THREADS + thread;
                const int sr = slot / (Tile::COLUMNS / V), sc = slot % (Tile::COLUMNS / V) * V;
                const int row = row0 + sr, col = col0 + sc;
                // A vector lies wholly inside or outside the slab's columns (W % V == 0).
                bool needed = false;
#pragma unroll
                for (int e = 0; e < V; ++e) {
                    int R, C;
                    destination_of<BACKWARD, DISTRIBUTE>(sr, sc + e, shift, R, C);
                    needed |= 0 <= R && R < T && r0 + R < destination_rows && 0 <= C && C < T && c0 + C < width;
                }
                loaded[k] = slot < LOAD_SLOTS && needed && 0 <= row && row < source_rows && 0 <= col && col < width;
                if (loaded[k]) packs[k] = load_global<E, V>(src + row * hw + col);
            }
#pragma unroll
            for (int k = 0; k < LOAD_STEPS; ++k) {
                const int slot = k * PSAMASK_THREADS + thread;
                const int sr = slot / (Tile::COLUMNS / V), sc = slot % (Tile::COLUMNS / V) * V;
                if (loaded[k]) *reinterpret_cast<Pack<E, V>*>(tile + sr * Tile::PITCH + sc) = packs[k];
            }
            __syncthreads();
        }

#pragma unroll
        for (int k = 0; k < STORE_SLOTS; k += PSAMASK_THREADS) {
            const int slot = k + thread;
            const int R = slot / (T / V), C = slot % (T / V) * V;
            if (slot < STORE_SLOTS && r0 + R < destination_rows && c0 + C < width) {
                Pack<E, V> pack;
#pragma unroll
                for (int e = 0; e < V; ++e) {
                    int sr, sc;
                    source_of<BACKWARD, DISTRIBUTE>(R, C + e, shift, sr, sc);
                    const int row = row0 + sr, col = col0 + sc;
                    const bool inside = any && 0 <= row && row < source_rows && 0 <= col && col < width;
                    pack.element[e] = inside ? tile[sr * Tile::PITCH + sc] : (E)0;
                }
                store_global<E, V>(dst + (r0 + R) * hw + c0 + C, pack);
            }
        }
        if (any) __syncthreads();  // the next tile's loads reuse the shared tile
    }
}

#define PSAMASK_KERNEL(NAME, E, V, BACKWARD, DISTRIBUTE)                                          \
    extern "C" __global__ void __launch_bounds__(PSAMASK_THREADS)                                 \
        NAME(const E* source, E* destination, int height, int width, int mh, int mw) {            \
        psamask_tile<E, V, BACKWARD, DISTRIBUTE>(source, destination, height, width, mh, mw);     \
    }

// psamask_<forward|backward>_<collect|distribute>_<element bits>_v<V>
#define PSAMASK_INSTANCES(SUFFIX, E, V)                                    \
    PSAMASK_KERNEL(psamask_forward_collect_##SUFFIX, E, V, false, false)   \
    PSAMASK_KERNEL(psamask_backward_collect_##SUFFIX, E, V, true, false)   \
    PSAMASK_KERNEL(psamask_forward_distribute_##SUFFIX, E, V, false, true) \
    PSAMASK_KERNEL(psamask_backward_distribute_##SUFFIX, E, V, true, true)

PSAMASK_INSTANCES(u16_v1, unsigned short, 1)
PSAMASK_INSTANCES(u16_v8, unsigned short, 8)
PSAMASK_INSTANCES(u32_v1, unsigned int, 1)
PSAMASK_INSTANCES(u32_v4, unsigned int, 4)
PSAMASK_INSTANCES(u64_v1, unsigned long long, 1)
PSAMASK_INSTANCES(u64_v2, unsigned long long, 2)
