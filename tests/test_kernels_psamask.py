"""kernels/psamask.cu checked without a GPU.

1. A NumPy model of the kernel's index map (tests/psamask_kernel_model.py) replays every
   thread's loads and stores. On small and odd shapes (masks larger than the map, non-square
   maps, maps and masks that are not multiples of the tile, every access width) the matrix
   it writes equals psa_mask_reference, and the gradient the reference's autograd gradient,
   bit for bit; every element is written once, and the source elements that must move are
   read once and no others.
2. The model's accesses are the kernel's: the real source, compiled by g++ with tracing
   calls added before its global and shared accesses (tests/cuda_on_cpu.py), records what
   every thread of every block touches, and that equals the model, access by access.
3. So what the model shows about the accesses holds for the kernel: a warp's global loads
   and stores are contiguous along each row they touch, stores fill whole 32-byte sectors,
   16-byte vectors are aligned, and shared memory sees at most 4-way bank conflicts.
4. The real source runs through psa_mask_cupy's own launch code (cupy_runtime's launcher
   replaced by the CPU one) in every instance: 2-, 4- and 8-byte elements, vector and
   scalar accesses, forward and backward, collect and distribute, into outputs poisoned
   with NaN, and equals psa_mask_reference bit for bit.
What is left for a GPU: speed, and the hardware's own word on all this
(tests/test_ops_gpu.py, benchmarks/psamask.py).
"""

import functools

import cuda_on_cpu
import numpy as np
import psamask_kernel_model as model
import pytest
import torch

from psanet_lite.ops import cupy_runtime, psa_mask_cupy
from psanet_lite.ops.psa_mask_reference import psa_mask_reference

MODES = ("collect", "distribute")
DIRECTIONS = ("forward", "backward")

# (N, H, W, mh, mw)
SMALL_SHAPES = [
    (2, 3, 5, 4, 6),  # even mask smaller than (5, 9)
    (1, 4, 4, 7, 7),  # odd, exactly over-completed
    (3, 3, 5, 5, 9),  # non-square, exactly over-completed
    (1, 5, 5, 3, 3),  # odd mask smaller than the map
    (1, 3, 4, 6, 8),  # even mask, larger than the map one way, smaller the other
    (1, 2, 3, 6, 10),  # even mask larger than (3, 5)
    (1, 3, 3, 9, 11),  # odd mask larger than (5, 5)
    (3, 4, 2, 2, 5),  # mixed even/odd
    (1, 1, 1, 1, 1),  # one position
    (1, 2, 8, 3, 8),  # a mask row shorter than the map
]
# Wider than one 32-wide tile, and masks taller than one tile of the gradient slab.
TILED_SHAPES = [
    (1, 2, 40, 3, 9),  # 40 = 32 + 8 columns, a small mask
    (1, 2, 37, 5, 75),  # 37 columns, mask wider than 2W-1 = 73
    (1, 3, 64, 4, 97),  # Cityscapes 512x1024's 64 columns and 97-wide mask, three rows
    (1, 2, 33, 66, 66),  # ADE20K's even 66 mask
    (1, 2, 49, 3, 97),  # Cityscapes 769x769's 49 columns
]


def widths(width):
    """Access widths the kernel has instances for that fit this map width (V divides W)."""
    return [v for v in (1, 2, 4, 8) if width % v == 0]


MODEL_CASES = [
    (shape, direction, mode, vector)
    for shape in SMALL_SHAPES + TILED_SHAPES
    for direction in DIRECTIONS
    for mode in MODES
    for vector in widths(shape[2])
]


def case_id(case):
    (n, h, w, mh, mw), direction, mode, vector = case
    return f"N{n}-{h}x{w}-m{mh}x{mw}-{direction}-{mode}-v{vector}"


@functools.lru_cache(maxsize=None)
def reference(shape, mode):
    """(A, Y = psa_mask_reference(A), dY, dA = its gradient), float64, seeded by the shape."""
    n, height, width, mh, mw = shape
    generator = torch.Generator().manual_seed(sum(shape) * 7 + len(mode))
    a = torch.randn(n, mh * mw, height, width, dtype=torch.float64, generator=generator, requires_grad=True)
    y = psa_mask_reference(a, mode, mh, mw)
    grad_y = torch.randn(y.shape, dtype=torch.float64, generator=generator)
    (grad_a,) = torch.autograd.grad(y, a, grad_y)
    return a.detach(), y.detach(), grad_y, grad_a


def must_move(shape, mode, direction):
    """Sorted flat indices of the source elements the operator copies anywhere: the cells of
    A that land on the map (forward), the entries of Y that hold a cell (backward); from the
    reference, applied to A = 1, 2, 3, ..."""
    n, height, width, mh, mw = shape
    numbers = torch.arange(1, n * mh * mw * height * width + 1, dtype=torch.float64)
    y = psa_mask_reference(numbers.view(n, mh * mw, height, width), mode, mh, mw).flatten()
    if direction == "forward":
        return np.sort(y[y != 0].numpy().astype(np.int64) - 1)
    return np.flatnonzero(y.numpy())


@pytest.mark.parametrize("case", MODEL_CASES, ids=case_id)
def test_model_writes_the_reference_and_reads_only_what_moves(case):
    shape, direction, mode, vector = case
    a, y, grad_y, grad_a = reference(shape, mode)
    accesses = model.kernel_accesses(direction, mode, *shape, vector)
    source, expected = (a, y) if direction == "forward" else (grad_y, grad_a)
    assert np.array_equal(model.replay(accesses, source.flatten().numpy()), expected.flatten().numpy())

    block, slot = np.nonzero(accesses.load_active)
    first = accesses.load_source[block, slot]
    needed = must_move(shape, mode, direction)
    if vector == 1:
        assert np.array_equal(np.sort(first), needed)  # each once, nothing else
    else:
        assert (first % vector == 0).all()
        loaded = np.unique(first[:, None] + np.arange(vector))
        assert np.isin(needed, loaded).all()
        # every vector read holds an element that moves
        assert np.isin(first[:, None] + np.arange(vector), needed).any(axis=1).all()


COALESCING_CASES = [
    (shape, direction, mode, element_size)
    for shape in [(1, 3, 64, 4, 97), (1, 2, 33, 66, 66), (1, 2, 49, 3, 97), (2, 3, 5, 4, 6)]
    for direction in DIRECTIONS
    for mode in MODES
    for element_size in (2, 4, 8)
]


def _vector(width, element_size):
    vector = 16 // element_size
    return vector if width % vector == 0 else 1


@pytest.mark.parametrize("shape, direction, mode, element_size", COALESCING_CASES, ids=str)
def test_model_accesses_are_coalesced_and_banks_rarely_conflict(shape, direction, mode, element_size):
    n, height, width, mh, mw = shape
    vector = _vector(width, element_size)
    accesses = model.kernel_accesses(direction, mode, *shape, vector)
    hw = height * width
    for active, first in [(accesses.load_active, accesses.load_source),
                          (accesses.store_active, accesses.store_destination)]:
        active, first = model.warp_instructions(active, first)
        # Lanes that touch one row (rows are H*W elements apart) touch one contiguous piece of it.
        runs = model.contiguous_runs(active, first, vector)
        rows = model.distinct_per_instruction(active, first // hw)
        assert (runs <= rows).all()
        assert (first[active] % vector == 0).all()  # 16-byte aligned when vector > 1
    active, first = model.warp_instructions(accesses.store_active, accesses.store_destination)
    if width * element_size % 32 == 0:
        # Every 32-byte sector of the output is written by exactly one warp instruction.
        sectors = model.distinct_per_instruction(active, first * element_size // 32)
        assert sectors.sum() == accesses.destination_size * element_size // 32

    active, index = model.warp_instructions(accesses.load_active, accesses.load_shared)
    assert (index[active] % vector == 0).all()  # shared vector stores 16-byte aligned too
    worst = [model.bank_conflicts(active, index * element_size, vector * element_size).max()]
    for e in range(vector):
        reads = accesses.store_active & (accesses.store_shared[..., e] >= 0)
        active, index = model.warp_instructions(reads, accesses.store_shared[..., e])
        worst.append(model.bank_conflicts(active, index * element_size, element_size).max())
    assert max(worst) <= 4, worst


# The real source on the CPU: tracing calls added before every global and shared access.
# (kernel code, the same with a trace call): global load, global store, shared store, shared load.
_TRACE_POINTS = [
    ("pack.vector = *reinterpret_cast<const typename Access<sizeof(E) * V>::type*>(p);",
     "psa_trace(0, p, sizeof(pack)); pack.vector = *reinterpret_cast<const typename Access<sizeof(E) * V>::type*>(p);"),
    ("*reinterpret_cast<typename Access<sizeof(E) * V>::type*>(p) = pack.vector;",
     "psa_trace(1, p, sizeof(pack)); *reinterpret_cast<typename Access<sizeof(E) * V>::type*>(p) = pack.vector;"),
    ("if (loaded[k]) *reinterpret_cast<Pack<E, V>*>(tile + sr * Tile::PITCH + sc) = packs[k];",
     "if (loaded[k]) { psa_trace(2, (const void*)(sizeof(E) * (sr * Tile::PITCH + sc)), sizeof(packs[k])); "
     "*reinterpret_cast<Pack<E, V>*>(tile + sr * Tile::PITCH + sc) = packs[k]; }"),
    ("pack.element[e] = inside ? tile[sr * Tile::PITCH + sc] : (E)0;",
     "pack.element[e] = inside ? (psa_trace(3, (const void*)(sizeof(E) * (sr * Tile::PITCH + sc)), sizeof(E)), "
     "tile[sr * Tile::PITCH + sc]) : (E)0;"),
]
LOAD, STORE, SHARED_STORE, SHARED_LOAD = range(4)  # the kinds recorded


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    source = cupy_runtime.kernel_path(psa_mask_cupy.KERNEL_FILE).read_text()
    for code, traced in _TRACE_POINTS:
        assert source.count(code) == 1, f"the test expects {code!r} once in the kernel source"
        source = source.replace(code, traced)
    return cuda_on_cpu.compile_kernels(source, tmp_path_factory.mktemp("psamask_cpu"))


@pytest.fixture(scope="module")
def block_threads():
    return cuda_on_cpu.BlockThreads(psa_mask_cupy.THREADS)


@pytest.fixture
def kernels_on_cpu(cpu_kernels, block_threads, monkeypatch):
    """psa_mask_cupy with its launches run by the CPU build of the kernels."""

    def launch_grid(name, kernel_name, grid, threads, args, device):
        assert name == psa_mask_cupy.KERNEL_FILE and threads == block_threads.count
        cuda_on_cpu.run_blocks(block_threads, cpu_kernels, kernel_name, grid, args)

    monkeypatch.setattr(cupy_runtime, "launch_grid", launch_grid)
    return psa_mask_cupy


def _model_trace(accesses, element_size):
    """The accesses the model predicts, in the trace's order (by thread, then program order):
    rows (thread, block_x, block_y, kind, element offset or tile index, bytes)."""
    vector, threads = accesses.vector, model.THREADS
    grid_x = accesses.grid[0]
    records = []

    def add(active, kind, value, phase, order, bytes_):
        tile, slot = np.nonzero(active)
        records.append(np.stack([slot % threads, tile, np.full_like(tile, phase), slot // threads,
                                 np.full_like(tile, order), np.full_like(tile, kind), value[tile, slot],
                                 np.full_like(tile, bytes_)], axis=1))

    # A thread issues all its loads of a tile, then all its shared stores, then per slot
    # of the second loop its shared reads and one store.
    load_bytes = vector * element_size
    add(accesses.load_active, LOAD, accesses.load_source, 0, 0, load_bytes)
    add(accesses.load_active, SHARED_STORE, np.broadcast_to(accesses.load_shared, accesses.load_active.shape),
        1, 0, load_bytes)
    for e in range(vector):
        shared = accesses.store_shared[..., e]
        add(accesses.store_active & (shared >= 0), SHARED_LOAD, shared, 2, e, element_size)
    add(accesses.store_active, STORE, accesses.store_destination, 2, vector, load_bytes)
    rows = np.concatenate(records)
    rows = rows[np.lexsort(rows[:, 4::-1].T)]  # by thread, tile (block, then tile down), phase, step, order
    thread, block = rows[:, 0], rows[:, 1] // accesses.tiles_down
    return np.stack([thread, block % grid_x, block // grid_x, rows[:, 5], rows[:, 6], rows[:, 7]], axis=1)


def _kernel_trace(records, source, destination):
    element_size = source.element_size()
    value = records["address"].astype(np.int64)
    kind = records["kind"].astype(np.int64)
    value = np.where(kind == LOAD, value - source.data_ptr(), value)
    value = np.where(kind == STORE, value - destination.data_ptr(), value)
    return np.stack([records["thread"], records["block_x"], records["block_y"], kind, value // element_size,
                     records["bytes"]], axis=1).astype(np.int64)


TRACE_CASES = [
    (shape, direction, mode, dtype)
    for shape, dtype in [((1, 2, 40, 3, 9), torch.float32), ((2, 3, 5, 4, 6), torch.float16),
                         ((1, 2, 8, 5, 20), torch.float64), ((1, 2, 16, 3, 35), torch.bfloat16)]
    for direction in DIRECTIONS
    for mode in MODES
]


@pytest.mark.parametrize("shape, direction, mode, dtype", TRACE_CASES, ids=str)
def test_kernel_accesses_are_the_models(kernels_on_cpu, cpu_kernels, shape, direction, mode, dtype):
    n, height, width, mh, mw = shape
    a, y, grad_y, grad_a = reference(shape, mode)
    source = (a if direction == "forward" else grad_y).to(dtype)
    destination = torch.full((y if direction == "forward" else grad_a).shape, float("nan"), dtype=dtype)
    run = kernels_on_cpu.psamask_forward_into if direction == "forward" else kernels_on_cpu.psamask_backward_into
    with cuda_on_cpu.Trace(cpu_kernels) as trace:
        run(source, destination, mode, mh, mw)
    vector = psa_mask_cupy.access_width([source, destination], width)
    expected = _model_trace(model.kernel_accesses(direction, mode, *shape, vector), source.element_size())
    assert np.array_equal(_kernel_trace(trace.records, source, destination), expected)


KERNEL_CASES = [
    (shape, dtype)
    for shape in [(2, 3, 5, 4, 6), (1, 3, 3, 9, 11), (1, 2, 40, 3, 9), (1, 2, 37, 5, 75), (1, 2, 16, 6, 33)]
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
]


@pytest.mark.parametrize("shape, dtype", KERNEL_CASES, ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_kernel_on_cpu_moves_every_bit(kernels_on_cpu, shape, dtype, mode):
    n, height, width, mh, mw = shape
    a, y, grad_y, grad_a = reference(shape, mode)
    # Vector instances where W allows them, the scalar ones too: tensors one element past
    # a 16-byte boundary (a storage offset) take the scalar path.
    for offset in (0, 1):
        x = torch.empty(a.numel() + offset, dtype=dtype)[offset:].view(a.shape).copy_(a)
        out = torch.full((y.numel() + offset,), float("nan"), dtype=dtype)[offset:].view(y.shape)
        kernels_on_cpu.psamask_forward_into(x, out, mode, mh, mw)
        assert torch.equal(out, y.to(dtype)), f"forward, storage offset {offset}"
        g = torch.empty(grad_y.numel() + offset, dtype=dtype)[offset:].view(grad_y.shape).copy_(grad_y)
        grad = torch.full((a.numel() + offset,), float("nan"), dtype=dtype)[offset:].view(a.shape)
        kernels_on_cpu.psamask_backward_into(g, grad, mode, mh, mw)
        assert torch.equal(grad, grad_a.to(dtype)), f"backward, storage offset {offset}"


def test_the_launcher_uses_the_kernels_sizes():
    assert (psa_mask_cupy.TILE, psa_mask_cupy.THREADS) == (model.TILE, model.THREADS)


def test_both_access_widths_are_exercised():
    x = torch.zeros(64)
    assert psa_mask_cupy.access_width([x, x], 16) == 4
    assert psa_mask_cupy.access_width([x[1:], x], 16) == 1
    assert psa_mask_cupy.access_width([x.half(), x.half()], 16) == 8
    assert psa_mask_cupy.access_width([x.half(), x.half()], 12) == 1  # 12 is not a multiple of 8
    assert psa_mask_cupy.access_width([x.double(), x.double()], 6) == 2


def test_launch_geometry_refuses_what_32_bit_indices_cannot_reach():
    assert psa_mask_cupy.launch_geometry("forward", 8, 32, 32, 97, 97) == ((8 * 32 * 32, 1), psa_mask_cupy.THREADS)
    assert psa_mask_cupy.launch_geometry("backward", 8, 32, 49, 97, 97) == ((8 * 97 * 32, 2), psa_mask_cupy.THREADS)
    assert psa_mask_cupy.launch_geometry("backward", 1, 1024, 1024, 3, 2047)[0] == (3 * 1024, 32)
    with pytest.raises(ValueError, match="32-bit"):  # a slab of 2048 rows of 1024 * 1024: 2**31 elements
        psa_mask_cupy.launch_geometry("backward", 1, 1024, 1024, 3, 2048)
