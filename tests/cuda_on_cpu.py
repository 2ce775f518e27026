"""The CUDA kernels of kernels/ run on the CPU, for tests on machines without a GPU.

A kernel source is compiled by g++ with a small shim: CUDA qualifiers become no-ops,
__shared__ becomes a function static shared by the block's threads, __syncthreads a
std::barrier, and blockIdx/gridDim/blockDim plain globals (threadIdx is thread-local).
The threads of a block are OS threads (BlockThreads); blocks run one after another.
Tests put these loaders and launchers in place of cupy_runtime's, so the Python glue's
own argument lists and launch sizes are what runs.

Tensor cores: the shim defines PSA_ON_CPU, and a kernel that tests it calls
psa_mma_16816 for mma.sync.m16n8k16 (float32 += float16 or bfloat16 products) and
psa_half_to_float / psa_float_to_half for the two PTX conversions. The warp's lanes meet
at a barrier of their own and each computes its accumulators from the fragments of all
32, placed as the PTX ISA's fragment layout says; a kernel whose warp is not converged at
its mma (a lane that skips it) hangs, as it would be undefined on a GPU. The emulation
shares the kernel's reading of that layout, so only a GPU run checks the reading itself.

Tracing: a test may insert calls `psa_trace(kind, pointer, bytes)` into the source before
compiling; while tracing is on (`Trace`), each thread records its calls in program order
with its block, and `Trace.read()` returns them as a NumPy structured array.

    library = compile_kernels(source, folder)          # a ctypes.CDLL, or pytest.skip
    run_blocks(BlockThreads(128), library, "kernel", (4, 2), (np.uint64(ptr), np.int32(3)))
"""

import ctypes
import shutil
import subprocess
import threading

import numpy as np
import pytest

SHIM = r"""
#include <barrier>
#include <bit>
#include <math.h>
#include <vector>
struct PsaDim3 { unsigned x, y, z; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
thread_local PsaDim3 threadIdx;
static PsaDim3 blockIdx, gridDim, blockDim;
static std::barrier<>* psa_barrier = nullptr;
static inline void __syncthreads() { psa_barrier->arrive_and_wait(); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
static inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
static inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
static inline double __longlong_as_double(long long i) { return std::bit_cast<double>(i); }
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
static std::barrier<>* psa_warp_barrier[32] = {};
extern "C" void psa_emulate_begin(unsigned threads, unsigned block_x, unsigned block_y,
                                  unsigned grid_x, unsigned grid_y) {
    delete psa_barrier;
    psa_barrier = new std::barrier<>(threads);
    for (unsigned w = 0; w < 32; ++w) {
        delete psa_warp_barrier[w];
        psa_warp_barrier[w] = w * 32 < threads ? new std::barrier<>(32) : nullptr;
    }
    blockIdx = {block_x, block_y, 0};
    gridDim = {grid_x, grid_y, 1};
    blockDim = {threads, 1, 1};
}
extern "C" void psa_emulate_thread(unsigned t) { threadIdx = {t, 0, 0}; }

// 16-bit conversions and the warp's mma.sync m16n8k16 (f32 += f16/bf16 products), for
// kernels that test PSA_ON_CPU. The warp's lanes post their fragment registers, meet at
// the warp's barrier, and each computes its own accumulators from everyone's registers,
// with the lane layout of the PTX ISA (the kernel's header repeats it).
#define PSA_ON_CPU 1
static inline float psa_half_to_float(unsigned short bits) { return (float)std::bit_cast<_Float16>(bits); }
static inline unsigned short psa_float_to_half(float v) { return std::bit_cast<unsigned short>((_Float16)v); }
static unsigned psa_mma_a[32][32][4], psa_mma_b[32][32][2];
static inline float psa_mma_value(unsigned reg, int high, int bf16) {
    const unsigned short bits = high ? (unsigned short)(reg >> 16) : (unsigned short)(reg & 0xffffu);
    return bf16 ? std::bit_cast<float>((unsigned)bits << 16) : psa_half_to_float(bits);
}
static inline void psa_mma_16816(float* d, const unsigned* a, const unsigned* b, int bf16) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int r = 0; r < 4; ++r) psa_mma_a[warp][lane][r] = a[r];
    for (int r = 0; r < 2; ++r) psa_mma_b[warp][lane][r] = b[r];
    psa_warp_barrier[warp]->arrive_and_wait();
    const int g = lane / 4, t = lane % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e / 2), col = 2 * t + (e % 2);
        float sum = 0.f;
        for (int k = 0; k < 16; ++k) {
            // A[row][k]: lane 4*(row%8) + (k%8)/2, register (row/8) + 2*(k/8), half k%2
            const unsigned a_reg = psa_mma_a[warp][4 * (row % 8) + (k % 8) / 2][(row / 8) + 2 * (k / 8)];
            // B[k][col]: lane 4*col + (k%8)/2, register k/8, half k%2
            const unsigned b_reg = psa_mma_b[warp][4 * col + (k % 8) / 2][k / 8];
            sum += psa_mma_value(a_reg, k % 2, bf16) * psa_mma_value(b_reg, k % 2, bf16);
        }
        d[e] += sum;
    }
    psa_warp_barrier[warp]->arrive_and_wait();
}

struct PsaAccess { unsigned long long address; unsigned block_x, block_y, thread, kind, bytes, pad; };
static std::vector<PsaAccess> psa_log[1024];  // one per thread: each OS thread appends to its own
static bool psa_tracing = false;
static inline void psa_trace(unsigned kind, const void* p, unsigned bytes) {
    if (psa_tracing) {
        psa_log[threadIdx.x].push_back({(unsigned long long)p, blockIdx.x, blockIdx.y, threadIdx.x, kind, bytes, 0});
    }
}
extern "C" void psa_trace_enable(int on) {
    for (auto& log : psa_log) log.clear();
    psa_tracing = on;
}
extern "C" unsigned long long psa_trace_count() {
    unsigned long long count = 0;
    for (auto& log : psa_log) count += log.size();
    return count;
}
extern "C" void psa_trace_copy(PsaAccess* out) {
    for (auto& log : psa_log) for (auto& access : log) *out++ = access;
}
"""

ACCESS = np.dtype([("address", "u8"), ("block_x", "u4"), ("block_y", "u4"), ("thread", "u4"),
                   ("kind", "u4"), ("bytes", "u4"), ("pad", "u4")])


def compile_kernels(source, folder):
    """ctypes.CDLL of a kernel source compiled with the shim in `folder`; skips the test
    where g++ (with C++20: std::barrier, std::bit_cast) is missing."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found: the CPU run of the CUDA kernels needs it")
    (folder / "shim.h").write_text(SHIM)
    (folder / "kernels.cpp").write_text(source)
    library = folder / "kernels.so"
    command = [compiler, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread",
               "-include", str(folder / "shim.h"), str(folder / "kernels.cpp"), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 and "std=c++20" in result.stderr + result.stdout:
        pytest.skip(f"{compiler} lacks C++20 (std::barrier, std::bit_cast)")
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(library))


def c_argument(value):
    """The ctypes value of a kernel argument as the CuPy glue passes it."""
    if isinstance(value, ctypes.c_void_p):
        return value
    if isinstance(value, np.uint64):
        return ctypes.c_void_p(int(value))
    if isinstance(value, np.int32):
        return ctypes.c_int(int(value))
    if isinstance(value, np.float32):
        return ctypes.c_float(float(value))
    if isinstance(value, np.float64):
        return ctypes.c_double(float(value))
    raise TypeError(f"unexpected kernel argument {value!r}")


class BlockThreads:
    """`count` OS threads kept for their owner's lifetime, standing in for the threads of one block."""

    def __init__(self, count):
        self.count = count
        self.start = threading.Barrier(count + 1)
        self.done = threading.Barrier(count + 1)
        self.job = None
        for t in range(count):
            threading.Thread(target=self._work, args=(t,), daemon=True).start()

    def _work(self, t):
        while True:
            self.start.wait()
            library, kernel, c_args = self.job
            library.psa_emulate_thread(t)
            kernel(*c_args)
            self.done.wait()

    def run_block(self, library, kernel, c_args):
        self.job = (library, kernel, c_args)
        self.start.wait(timeout=60)
        self.done.wait(timeout=60)  # BrokenBarrierError if threads hang at a __syncthreads


def run_blocks(block_threads, library, kernel_name, grid, args):
    """Run every block of a 1-D or 2-D `grid` of `kernel_name`, block_threads.count threads each."""
    kernel = getattr(library, kernel_name)
    c_args = [c_argument(a) for a in args]
    grid_x, grid_y = (tuple(grid) + (1,))[:2]
    for block_y in range(grid_y):
        for block_x in range(grid_x):
            library.psa_emulate_begin(block_threads.count, block_x, block_y, grid_x, grid_y)
            block_threads.run_block(library, kernel, c_args)


class Trace:
    """Context manager: record the psa_trace calls of the kernels run inside it."""

    def __init__(self, library):
        self.library = library
        library.psa_trace_count.restype = ctypes.c_ulonglong

    def __enter__(self):
        self.library.psa_trace_enable(1)
        return self

    def __exit__(self, *exc):
        self.records = self.read()
        self.library.psa_trace_enable(0)

    def read(self):
        records = np.zeros(self.library.psa_trace_count(), dtype=ACCESS)
        self.library.psa_trace_copy(records.ctypes.data_as(ctypes.c_void_p))
        return records
