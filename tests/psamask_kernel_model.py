"""kernels/psamask.cu replayed in NumPy: what every thread of every block loads and stores.

A transcription of psamask_tile's index arithmetic (a block's slab and column of tiles,
each tile's source corner, the two slot loops and their predicates), vectorised over all
tiles and slots, so that properties of the kernel's memory accesses can be checked on
any machine: the answer it produces, which elements each thread touches, whether a
warp's accesses are coalesced and aligned, how often shared memory banks conflict.
tests/test_kernels_psamask.py ties it to the kernel itself by comparing its accesses
with those of the real source run on the CPU (tests/cuda_on_cpu.py).

    accesses = kernel_accesses("forward", "collect", n=2, height=3, width=5, mh=4, mw=6, vector=1)
    y = replay(accesses, a.flatten())   # Y as the kernel would write it
"""

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

SOURCE = Path(__file__).resolve().parents[1] / "kernels" / "psamask.cu"


def kernel_constant(name):
    """The value of `#define name` in kernels/psamask.cu, so the model follows the kernel's sizes."""
    match = re.search(rf"^#define {name} (\d+)", SOURCE.read_text(), re.MULTILINE)
    assert match, f"#define {name} not found in {SOURCE}"
    return int(match.group(1))


TILE = kernel_constant("PSAMASK_TILE")
THREADS = kernel_constant("PSAMASK_THREADS")


class Accesses(NamedTuple):
    """Every access of one launch, per tile: a block walks `tiles_down` tiles, and tile t
    of the launch is tile t % tiles_down of block t // tiles_down (blocks numbered
    x-fastest, as launched). Phase 1 (loads), one row per vector slot of each tile:
    `load_active`, `load_source` (element offset of the vector's first element in the
    source tensor), `load_shared` (element index in the block's shared tile); phase 2
    (stores): `store_active`, `store_destination`, `store_shared` [.., V] (the shared
    element each of the V elements is taken from, -1 for a 0). Arrays are [tiles, slots];
    slot s runs on thread s % THREADS at step s // THREADS."""

    vector: int
    tile_elements: int  # rows * pitch of the shared tile
    source_size: int
    destination_size: int
    grid: tuple
    tiles_down: int
    load_active: np.ndarray
    load_source: np.ndarray
    load_shared: np.ndarray
    store_active: np.ndarray
    store_destination: np.ndarray
    store_shared: np.ndarray


def _source_of(backward, distribute, R, C, shift, tile):
    if not distribute:
        return (R + C if backward else R - C + tile - 1), C
    if not backward:
        return C - R + tile - 1, R
    return C, R + C + shift


def _destination_of(backward, distribute, sr, sc, shift, tile):
    if not distribute:
        return (sr - sc if backward else sr + sc - (tile - 1)), sc
    if not backward:
        return sc, sr + sc - (tile - 1)
    return sc - shift - sr, sr


def kernel_accesses(direction, mode, n, height, width, mh, mw, vector, tile=TILE, threads=THREADS):
    """The Accesses of psamask_<direction>_<mode>_*_v<vector> on these sizes."""
    backward, distribute = direction == "backward", mode == "distribute"
    T, V = tile, vector
    wide = backward and distribute
    rows, columns = (T, 2 * T + V) if wide else (2 * T - 1, T)
    pitch = columns + (V if not backward and distribute else (1 if wide and V == 1 else 0))
    hw, half_h, half_w = height * width, (mh - 1) // 2, (mw - 1) // 2
    pairs = mh if backward else height
    source_rows, destination_rows = (width, mw) if backward else (mw, width)
    grid = (n * height * pairs, -(-width // T))
    tiles_down = -(-destination_rows // T)

    tile = np.arange(grid[0] * grid[1] * tiles_down).reshape(-1, 1)  # [tiles, 1]
    block = tile // tiles_down
    block_x, block_y = block % grid[0], block // grid[0]
    h = block_x % height
    pair = block_x // height % pairs
    image = block_x // height // pairs
    i = pair if backward else pair - h + half_h
    th = h + pair - half_h if backward else pair
    linked = (0 <= i) & (i < mh) & (0 <= th) & (th < height)
    a_slab = (image * mh + i) * mw * hw + h * width
    y_slab = ((image * height + h) * width * hw + th * width) if distribute else \
        ((image * height + th) * width * hw + h * width)
    r0, c0 = tile % tiles_down * T, block_y * T
    shift = np.zeros_like(r0)
    if not distribute:
        row0 = r0 + c0 - half_w if backward else r0 - c0 - (T - 1) + half_w
        col0 = c0
    elif not backward:
        row0, col0 = c0 - r0 - (T - 1) + half_w, r0
    else:
        row0 = c0
        col0 = (r0 + c0 - half_w) & ~(V - 1)
        shift = r0 + c0 - half_w - col0
    any_ = linked & (row0 < source_rows) & (row0 + rows > 0) & (col0 < width) & (col0 + columns > 0)
    source_base, destination_base = (y_slab, a_slab) if backward else (a_slab, y_slab)

    # Phase 1: the source tile, vector slot by vector slot.
    load_slots = rows * (columns // V)
    slot = np.arange(-(-load_slots // threads) * threads).reshape(1, -1)
    sr, sc = slot // (columns // V), slot % (columns // V) * V
    row, col = row0 + sr, col0 + sc
    needed = np.zeros(np.broadcast_shapes(slot.shape, r0.shape), dtype=bool)
    for e in range(V):
        R, C = _destination_of(backward, distribute, sr, sc + e, shift, T)
        needed |= (0 <= R) & (R < T) & (r0 + R < destination_rows) & (0 <= C) & (C < T) & (c0 + C < width)
    load_active = any_ & (slot < load_slots) & needed & (0 <= row) & (row < source_rows) & (0 <= col) & (col < width)
    load_source = source_base + row * hw + col
    load_shared = np.broadcast_to(sr * pitch + sc, load_active.shape)

    # Phase 2: the destination tile, each element from the tile or 0.
    store_slots = T * (T // V)
    slot = np.arange(-(-store_slots // threads) * threads).reshape(1, -1)
    R, C = slot // (T // V), slot % (T // V) * V
    store_active = (slot < store_slots) & (r0 + R < destination_rows) & (c0 + C < width)
    store_destination = destination_base + (r0 + R) * hw + c0 + C
    shared = []
    for e in range(V):
        sr, sc = _source_of(backward, distribute, R, C + e, shift, T)
        row, col = row0 + sr, col0 + sc
        inside = any_ & (0 <= row) & (row < source_rows) & (0 <= col) & (col < width)
        shared.append(np.where(inside, sr * pitch + sc, -1))
    store_shared = np.stack(np.broadcast_arrays(*shared), axis=-1)

    source_size = n * mh * mw * hw if not backward else n * hw * hw
    destination_size = n * hw * hw if not backward else n * mh * mw * hw
    shape = store_active.shape
    return Accesses(V, rows * pitch, source_size, destination_size, grid, tiles_down,
                    load_active, load_source, load_shared,
                    np.broadcast_to(store_active, shape), np.broadcast_to(store_destination, shape), store_shared)


def replay(accesses, source):
    """The flat destination the launch writes from the flat `source` (a NumPy array), with
    the checks a real launch cannot make: no access leaves its tensor or its tile, every
    value read from the shared tile was loaded into it for the same tile, every destination
    element is written exactly once."""
    V = accesses.vector
    tiles = accesses.load_active.shape[0]
    # Which source element each shared element holds, -1 until a load of this tile puts one
    # there (stricter than the kernel, whose shared tile still holds the previous tile's).
    held = np.full((tiles, accesses.tile_elements), -1, dtype=np.int64)
    tile, slot = np.nonzero(accesses.load_active)
    first = accesses.load_source[tile, slot]
    assert first.min(initial=0) >= 0 and first.max(initial=0) + V <= accesses.source_size, "load outside the source"
    shared = accesses.load_shared[tile, slot]
    assert shared.max(initial=0) + V <= accesses.tile_elements, "store outside the tile"
    for e in range(V):
        assert (held[tile, shared + e] == -1).all(), "a tile element loaded twice"
        held[tile, shared + e] = first + e

    destination = np.zeros(accesses.destination_size, dtype=source.dtype)
    written = np.zeros(accesses.destination_size, dtype=np.int64)
    tile, slot = np.nonzero(accesses.store_active)
    first = accesses.store_destination[tile, slot]
    assert first.min(initial=0) >= 0 and first.max(initial=0) + V <= accesses.destination_size, "store outside"
    for e in range(V):
        tile_element = accesses.store_shared[tile, slot, e]
        taken = tile_element >= 0
        origin = held[tile[taken], tile_element[taken]]
        assert (origin >= 0).all(), "a tile element read before any load wrote it"
        destination[first[taken] + e] = source[origin]
        np.add.at(written, first + e, 1)
    assert (written == 1).all(), f"destination elements written {sorted(set(written.tolist()))} times, not once"
    return destination


# What the memory system makes of a slot loop's accesses, one warp instruction at a time.
# A warp is 32 consecutive threads; slot s runs on thread s % THREADS at step s // THREADS,
# so [tiles, slots] reshapes to [tiles, steps, warps, 32 lanes].

def warp_instructions(active, first):
    """(active, first) as [instructions, 32]: the lanes of every warp instruction of a slot loop."""
    active = np.asarray(active)
    shape = (-1, 32)
    return active.reshape(shape), np.broadcast_to(first, active.shape).reshape(shape)


def contiguous_runs(active, first, vector):
    """[instructions]: into how many contiguous pieces the active lanes' accesses fall
    (vectors of `vector` elements starting at `first`)."""
    key = np.sort(np.where(active, first, np.iinfo(np.int64).max), axis=1)
    valid = np.sort(active, axis=1)[:, ::-1]  # as many leading True as active lanes
    breaks = (np.diff(key, axis=1) != vector) & valid[:, 1:]
    return np.where(active.any(axis=1), 1 + breaks.sum(axis=1), 0)


def distinct_per_instruction(active, values):
    """[instructions]: how many distinct values the active lanes have."""
    key = np.sort(np.where(active, values, -1), axis=1)
    new = np.ones_like(key, dtype=bool)
    new[:, 1:] = key[:, 1:] != key[:, :-1]
    return (new & (key >= 0)).sum(axis=1)


def bank_conflicts(active, byte_address, access_bytes):
    """[instructions]: the n of each instruction's n-way bank conflict (1: none). Shared
    memory serves 128 bytes per wavefront: the lanes of an instruction go in groups of 32
    (accesses of 4 bytes or fewer), 16 (8 bytes) or 8 (16 bytes), and within a group, lanes
    reaching different 4-byte words of one bank (word % 32) are served one after another."""
    lanes = 128 // max(access_bytes, 4)
    words = max(1, access_bytes // 4)
    count = active.shape[0]
    active = np.repeat(active.reshape(count, 32 // lanes, lanes), words, axis=2)
    word = (byte_address.reshape(count, 32 // lanes, lanes, 1) // 4 + np.arange(words)).reshape(active.shape)
    key = np.sort(np.where(active, word, -1), axis=2)
    new = np.ones_like(key, dtype=bool)
    new[..., 1:] = key[..., 1:] != key[..., :-1]
    new &= key >= 0
    per_bank = np.zeros(key.shape[:2] + (32,), dtype=np.int64)
    index = np.nonzero(new)
    np.add.at(per_bank, (index[0], index[1], key[index] % 32), 1)
    return per_bank.max(axis=(1, 2))  # wavefronts of the slowest group
