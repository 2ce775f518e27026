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
// Thread mapping. mmcv runs one thread per position (n, h, w) looping over its mask
// window; in distribute mode that thread writes a row of Y, so neighbouring threads
// write addresses HW elements apart (uncoalesced), and Y must be zeroed by a separate
// pass first. Here the forward runs one thread per OUTPUT element: consecutive threads
// write consecutive addresses of Y, and the zeros are written in the same pass (each
// thread writes either its weight or 0), so Y is written exactly once. The reads of A
// are the strided side instead; A is read at most once per output element. The
// backward mirrors this: one thread per INPUT element gathers its gradient from dY
// (or writes 0 when its mask cell falls off the map), so dA is written coalesced and
// exactly once, with no atomics and no zero-fill pass.

template <typename T>
__device__ __forceinline__ void psamask_forward(const T* __restrict__ a, T* __restrict__ y,
                                                long long total, int height, int width,
                                                int mh, int mw, int distribute) {
    const int hw = height * width;
    const int half_h = (mh - 1) / 2;
    const int half_w = (mw - 1) / 2;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += stride) {
        const long long row = o / hw;           // n * HW + p
        const int q = (int)(o - row * hw);
        const int p = (int)(row % hw);
        const long long n = row / hw;
        // The position whose mask holds the weight, and the other end of the pair.
        const int pos = distribute ? p : q;
        const int other = distribute ? q : p;
        const int pos_h = pos / width, pos_w = pos - pos_h * width;
        const int other_h = other / width, other_w = other - other_h * width;
        const int i = other_h - pos_h + half_h;
        const int j = other_w - pos_w + half_w;
        T value = 0;
        if (i >= 0 && i < mh && j >= 0 && j < mw) {
            value = a[(n * mh * mw + i * mw + j) * hw + pos];
        }
        y[o] = value;
    }
}

template <typename T>
__device__ __forceinline__ void psamask_backward(const T* __restrict__ grad_y, T* __restrict__ grad_a,
                                                 long long total, int height, int width,
                                                 int mh, int mw, int distribute) {
    const int hw = height * width;
    const int half_h = (mh - 1) / 2;
    const int half_w = (mw - 1) / 2;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const long long plane = e / hw;         // n * mh*mw + cell
        const int s = (int)(e - plane * hw);    // position (h, w) of this input element
        const int cell = (int)(plane % (mh * mw));
        const long long n = plane / (mh * mw);
        const int h = s / width, w = s - h * width;
        const int i = cell / mw, j = cell - i * mw;
        const int th = h + i - half_h;
        const int tw = w + j - half_w;
        T value = 0;
        if (th >= 0 && th < height && tw >= 0 && tw < width) {
            const int t = th * width + tw;
            const long long at = distribute ? (long long)s * hw + t : (long long)t * hw + s;
            value = grad_y[n * hw * hw + at];
        }
        grad_a[e] = value;
    }
}

#define PSAMASK_INSTANCES(SUFFIX, T)                                                          \
    extern "C" __global__ void psamask_forward_##SUFFIX(const T* a, T* y, long long total,     \
                                                        int height, int width, int mh, int mw, \
                                                        int distribute) {                      \
        psamask_forward<T>(a, y, total, height, width, mh, mw, distribute);                   \
    }                                                                                          \
    extern "C" __global__ void psamask_backward_##SUFFIX(const T* grad_y, T* grad_a,          \
                                                         long long total, int height,          \
                                                         int width, int mh, int mw,            \
                                                         int distribute) {                     \
        psamask_backward<T>(grad_y, grad_a, total, height, width, mh, mw, distribute);        \
    }

PSAMASK_INSTANCES(u16, unsigned short)
PSAMASK_INSTANCES(u32, unsigned int)
PSAMASK_INSTANCES(u64, unsigned long long)
