"""PSAMask in torch without index tables: the mask window is a strided view of A.

Collect writes Y[n, th, tw, h, w] = A[n, i, j, h, w] with (i, j) = (th - h + hh, tw - w + hw).
In A's memory (contiguous [N, mh, mw, H, W], HW = H*W) that entry sits at

    n*mh*mw*HW + (th - h + hh)*mw*HW + (tw - w + hw)*HW + h*W + w,

an affine function of (n, th, tw, h, w). So the entries Y reads form a strided view of A,
a moving window with strides (mh*mw*HW, mw*HW, HW, W - mw*HW, 1 - HW): negative in the
position (a step right on the map is a step left in the mask). Distribute writes the same
values transposed, Y[n, h, w, th, tw]: the same window written into Y's axes in the other
order. Forward copies the window of A into Y; backward copies dY into the window of a
zero gradient (cells that fall outside the map keep 0). Nothing is precomputed.

Only pairs with (i, j) inside the mask are copied. For target row th the valid h form one
range, and likewise for columns; where the mask covers the map in a direction (every
pair valid) that direction is one piece, otherwise one piece per target row (column).

Forward goes by mask row i instead: th - h = i - hh is fixed, so (th, h) is one diagonal
axis, and each piece reads the [mw, W] slabs A[n, i, :, h, :] while it writes whole rows
of Y, which keeps both sides in cache. A piece spans all (tw, w); pairs whose j falls
outside the mask read a neighbouring cell (an address inside A, checked) and are zeroed
afterwards. Backward cannot write such stray values into A's window (two of them could
land on one cell), so it copies the valid pieces only, each along dY's contiguous axis.

NumPy views take negative strides, torch's do not. On the CPU the copies run in NumPy on
the same memory, read as integers of the element's width (a bit copy: bfloat16, NaNs and
-0.0 move unchanged), spread over torch's threads. On other devices the view is made with
positive strides and the reversed axes are flipped in the copy (aten flip.out).
"""

import concurrent.futures
from typing import NamedTuple

import numpy as np
import torch

_BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # element size -> integer dtype
_MIN_SPLIT_ELEMENTS = 1 << 20  # a single piece smaller than this runs on one thread


class Strided(NamedTuple):
    """A layout over axes (n, th, tw, h, w): offset and strides in elements, negative allowed."""

    offset: int
    strides: tuple

    def piece(self, corner, diagonal=False):
        """(offset, strides) of the sub-view at `corner` (an index per axis); with `diagonal`,
        th and h step together as one axis, giving axes (n, th and h, tw, w)."""
        offset = self.offset + sum(index * stride for index, stride in zip(corner, self.strides))
        n, th, tw, h, w = self.strides
        return offset, ((n, th + h, tw, w) if diagonal else self.strides)


def mask_window(n, height, width, mh, mw):
    """The window of A [N, mh*mw, H, W] (contiguous) read by collect, axes (n, th, tw, h, w).

    >>> mask_window(1, 2, 2, 3, 3)
    Strided(offset=16, strides=(36, 12, 4, -10, -3))
    """
    hw = height * width
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    return Strided((half_h * mw + half_w) * hw, (mh * mw * hw, mw * hw, hw, width - mw * hw, 1 - hw))


def matrix_view(height, width, mode):
    """Y [N, HW, H, W] (contiguous) as axes (n, th, tw, h, w): collect stores Y[t, s], distribute Y[s, t].

    >>> matrix_view(2, 3, "distribute")
    Strided(offset=0, strides=(36, 3, 1, 18, 6))
    """
    hw = height * width
    if mode == "collect":
        return Strided(0, (hw * hw, width * hw, hw, width, 1))
    return Strided(0, (hw * hw, width, 1, width * hw, hw))


def valid_ranges(size, mask, half, per_position=False):
    """[(t0, t1, p0, p1)]: the pairs (target t, position p) whose mask index t - p + half lies
    in 0..mask-1, as rectangles: one when all pairs do, else one per target t (or, with
    per_position, one per position p).

    >>> valid_ranges(3, 5, 2), valid_ranges(3, 2, 0)
    ([(0, 3, 0, 3)], [(0, 1, 0, 1), (1, 2, 0, 2), (2, 3, 1, 3)])
    >>> valid_ranges(3, 2, 0, per_position=True)
    [(0, 2, 0, 1), (1, 3, 1, 2), (2, 3, 2, 3)]
    """
    if half >= size - 1 and mask - 1 - half >= size - 1:
        return [(0, size, 0, size)]
    # 0 <= half <= mask-1, so every rectangle holds at least the pair t = p
    if per_position:
        return [(max(0, p - half), min(size, p - half + mask), p, p + 1) for p in range(size)]
    return [(t, t + 1, max(0, t + half - mask + 1), min(size, t + half + 1)) for t in range(size)]


def _backward_pieces(n, height, width, mh, mw, mode):
    """[(corner, sizes, diagonal)] over axes (n, th, tw, h, w): exactly the valid pairs, in
    rectangles along dY's contiguous axis (w for collect, tw for distribute), which the
    copy then reads in order."""
    per_position = mode == "distribute"
    rows = valid_ranges(height, mh, (mh - 1) // 2, per_position)
    columns = valid_ranges(width, mw, (mw - 1) // 2, per_position)
    return [((0, th0, tw0, h0, w0), (n, th1 - th0, tw1 - tw0, h1 - h0, w1 - w0), False)
            for th0, th1, h0, h1 in rows for tw0, tw1, w0, w1 in columns]


def _forward_pieces(n, height, width, mh, mw):
    """[(corner, sizes, diagonal)]: one diagonal piece per mask row i, over all (tw, w)
    where the stray reads stay inside A, else over the valid column ranges."""
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2
    pieces = []
    for i in range(max(0, half_h - height + 1), min(mh, half_h + height)):
        h0, h1 = max(0, half_h - i), min(height, height + half_h - i)  # th = h + i - hh on the map
        # the cells read in row i run from i*mw + hw - (W-1) to i*mw + hw + (W-1)
        inside = 0 <= i * mw + half_w - width + 1 and i * mw + half_w + width <= mh * mw
        columns = [(0, width, 0, width)] if inside else valid_ranges(width, mw, half_w)
        pieces += [((0, h0 + i - half_h, tw0, h0, w0), (n, h1 - h0, tw1 - tw0, h1 - h0, w1 - w0), True)
                   for tw0, tw1, w0, w1 in columns]
    return pieces


def _zero_strays(y5, mh, mw):
    """Zero the entries of y5 (axes n, th, tw, h, w) whose mask index lies outside the mask."""
    _, height, width, _, _ = y5.shape
    rows, columns = valid_ranges(height, mh, (mh - 1) // 2), valid_ranges(width, mw, (mw - 1) // 2)
    for th, _, h0, h1 in rows if len(rows) > 1 else []:
        y5[:, th, :, :h0].zero_()
        y5[:, th, :, h1:].zero_()
    for tw, _, w0, w1 in columns if len(columns) > 1 else []:
        y5[:, :, tw, :, :w0].zero_()
        y5[:, :, tw, :, w1:].zero_()


def _split(piece, parts):
    """Split a piece along its batch axis, or else its second axis, into up to `parts` pieces."""
    (dst_offset, dst_strides), (src_offset, src_strides), sizes = piece
    axis = 0 if sizes[0] >= parts or sizes[1] == 1 else 1
    bounds = np.linspace(0, sizes[axis], min(parts, sizes[axis]) + 1).astype(int)
    return [((dst_offset + begin * dst_strides[axis], dst_strides), (src_offset + begin * src_strides[axis], src_strides),
             sizes[:axis] + (end - begin,) + sizes[axis + 1:]) for begin, end in zip(bounds[:-1], bounds[1:])]


def _numpy_view(array, view, sizes):
    offset, strides = view
    # the view's first element is a valid address; the (possibly negative) strides walk from it
    return np.lib.stride_tricks.as_strided(array[offset:], sizes, [s * array.itemsize for s in strides])


def _copy_numpy(destination, source, pieces):
    """Bit copies between flat CPU tensors, spread over torch's threads (np.copyto releases the GIL)."""
    bits = _BITS[destination.element_size()]
    dst, src = destination.view(bits).numpy(), source.view(bits).numpy()
    threads = torch.get_num_threads()
    if len(pieces) < threads and sum(np.prod(sizes) for _, _, sizes in pieces) >= _MIN_SPLIT_ELEMENTS:
        pieces = [part for piece in pieces for part in _split(piece, threads)]
    copies = [(_numpy_view(dst, dst_view, sizes), _numpy_view(src, src_view, sizes))
              for dst_view, src_view, sizes in pieces]
    if threads > 1 and len(copies) > 1:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda pair: np.copyto(*pair), copies))
    else:
        for pair in copies:
            np.copyto(*pair)


def _torch_view(base, view, sizes):
    """The view with positive strides (its reversed axes flipped), and the set of those axes."""
    offset, strides = view
    flipped = {axis for axis, stride in enumerate(strides) if stride < 0}
    offset += sum((sizes[axis] - 1) * strides[axis] for axis in flipped)
    return base.as_strided(sizes, [abs(stride) for stride in strides], base.storage_offset() + offset), flipped


def _copy_torch(destination, source, pieces):
    for dst_view, src_view, sizes in pieces:
        dst, dst_flipped = _torch_view(destination, dst_view, sizes)
        src, src_flipped = _torch_view(source, src_view, sizes)
        reverse = sorted(dst_flipped ^ src_flipped)  # axes reversed on one side only
        if reverse:
            torch.ops.aten.flip.out(src, reverse, out=dst)
        else:
            dst.copy_(src)


def _window_copy(destination, source, destination_layout, source_layout, pieces):
    """Copy the pieces (corner, sizes, diagonal) of the window from `source` to `destination` (flat)."""
    views = []
    for corner, sizes, diagonal in pieces:
        sizes = (sizes[0], sizes[1], sizes[2], sizes[4]) if diagonal else sizes
        views.append((destination_layout.piece(corner, diagonal), source_layout.piece(corner, diagonal), sizes))
    (_copy_numpy if destination.device.type == "cpu" else _copy_torch)(destination, source, views)


def psa_mask_torch(x, mode, mh, mw):
    """Strided-view PSAMask. x: [N, mh*mw, H, W] (validated by the caller) -> [N, H*W, H, W].

    >>> psa_mask_torch(torch.randn(1, 9, 2, 2), "distribute", 3, 3).shape
    torch.Size([1, 4, 2, 2])
    """
    n, _, height, width = x.shape
    hw = height * width
    y = x.new_empty(n * hw * hw)  # [N*HW*HW]
    _window_copy(y, x.contiguous().view(-1), matrix_view(height, width, mode), mask_window(n, height, width, mh, mw),
                 _forward_pieces(n, height, width, mh, mw))
    y5 = y.view(n, height, width, height, width)  # collect: axes (n, th, tw, h, w)
    _zero_strays(y5 if mode == "collect" else y5.permute(0, 3, 4, 1, 2), mh, mw)
    return y.view(n, hw, height, width)


def psa_mask_torch_backward(grad, mode, mh, mw):
    """Gradient of psa_mask_torch: grad [N, H*W, H, W] -> [N, mh*mw, H, W] (0 off the map).

    >>> psa_mask_torch_backward(torch.ones(1, 4, 2, 2), "collect", 3, 3).sum().item()
    16.0
    """
    n, _, height, width = grad.shape
    grad_x = grad.new_zeros(n * mh * mw * height * width)  # [N*mh*mw*HW]
    _window_copy(grad_x, grad.contiguous().view(-1), mask_window(n, height, width, mh, mw),
                 matrix_view(height, width, mode), _backward_pieces(n, height, width, mh, mw, mode))
    return grad_x.view(n, mh * mw, height, width)
