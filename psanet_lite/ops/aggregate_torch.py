"""PSA aggregation in plain torch, one block of output columns at a time.

The softmax of the attention matrix runs over each column separately, so the columns
can be produced in blocks: for output positions q0..q1-1 this module writes the
[HW, Q] block of the attention scores straight from the over-completed map (the
written cells of those columns, zero or -inf elsewhere), takes the softmax, and
multiplies with the features. Peak memory is a few such blocks instead of the whole
[N, HW, HW] matrix, and every number is computed by the same operations as the
unfused composition, so the result agrees with it to rounding (float64: ~1e-15).

The backward recomputes each block (nothing of size HW*HW is saved), with G the
output gradient times 1/normalization_factor:
    dF += G_blk @ P_blk^T                          # [N, C, HW]
    dP  = F^T @ G_blk                              # [N, HW, Q]
    dZ  = P * (dP - delta)                         # softmax backward per column
where delta = sum_rows(P * dP) = sum_c dOut * out (the saved output), and copies dZ
at the written cells back to the layout of the attention map.

Chunk size: a block holds N*HW*Q numbers; forward and backward keep at most about
three of them alive (scores, probabilities or dP, the gathered values) plus the
block's indices (int64, two per written cell, rebuilt per block: caching them for all
blocks would cost 16 bytes per entry of the dense matrix). Q is the largest width with
N*HW*Q within CHUNK_ELEMENTS = 2**21 (8 MiB of float32), and at most HW/8, so there
are always at least MIN_BLOCKS = 8 blocks: the scratch stays a fraction of the dense
matrix even where that matrix is small. At the reference shapes (maps 32x32 to 49x49,
batch 2 to 8) that gives Q = 109 to 301 columns (matrix products still wide), at full
resolution (128x256 map, batch 2) Q = 32.
"""

import torch

CHUNK_ELEMENTS = 2**21
MIN_BLOCKS = 8


def chunk_width(batch, hw, chunk_elements=CHUNK_ELEMENTS, rows=None):
    """Output positions per block: at least MIN_BLOCKS blocks, each of batch * rows * width
    numbers (rows: HW unless given) within `chunk_elements`.

    >>> chunk_width(2, 32 * 32), chunk_width(2, 128 * 256), chunk_width(2, 32 * 32, rows=97 * 97)
    (128, 32, 111)
    """
    return max(1, min(-(-hw // MIN_BLOCKS), chunk_elements // (batch * (hw if rows is None else rows))))


def column_block_indices(height, width, mh, mw, mode, q0, q1, device):
    """Written cells of the attention-matrix columns q0..q1-1, in block order.

    Returns (block_index, attention_index, covers_all): int64 [P] flat indices into the
    [HW, Q] column block (row * Q + column - q0) and into one sample of the
    over-completed map [mh*mw*HW] (cell * HW + position); covers_all is True when every
    entry of the block is written (then block_index is None: it would be 0..HW*Q-1).

    Row r of column q holds cell k = (i, j) with r = q + sign*off(k), off(k) = (i - hh,
    j - hw): sign = +1 for collect (value A[k, q]), -1 for distribute (value A[k, r]).

    >>> _, a, full = column_block_indices(2, 2, 3, 3, "collect", 0, 4, torch.device("cpu"))
    >>> full, a.numel()  # a 3x3 mask on a 2x2 map writes all 4x4 entries
    (True, 16)
    >>> b, a, full = column_block_indices(2, 2, 2, 2, "collect", 0, 4, torch.device("cpu"))
    >>> full, b.tolist()  # a 2x2 mask (offsets 0..1) misses the rows above/left of a column
    (False, [0, 4, 5, 8, 10, 12, 13, 14, 15])
    """
    if device.type == "meta":
        # Shape-only FLOP counting: the meta device cannot decide which cells lie inside
        # the mask, so the indices are built on the CPU and moved.
        block_index, attention_index, covers_all = column_block_indices(
            height, width, mh, mw, mode, q0, q1, torch.device("cpu"))
        return (None if block_index is None else block_index.to(device)), attention_index.to(device), covers_all
    hw, half_h, half_w = height * width, (mh - 1) // 2, (mw - 1) // 2
    sign = 1 if mode == "collect" else -1
    q = torch.arange(q0, q1, device=device)                             # [Q] columns
    qh, qw = q // width, q % width
    r = torch.arange(hw, device=device)                                 # [HW] rows
    rh, rw = r // width, r % width
    i = sign * (torch.arange(height, device=device)[:, None] - qh) + half_h  # [H, Q] mask row
    j = sign * (torch.arange(width, device=device)[:, None] - qw) + half_w   # [W, Q] mask column
    inside = (((i >= 0) & (i < mh))[:, None, :] & ((j >= 0) & (j < mw))[None, :, :]).reshape(hw, -1)  # [HW, Q]

    # (i*mw + j)*HW + position splits into a term of the row and a term of the column:
    # collect (i = rh-qh+hh, position q):    ((rh+hh)*mw + rw+hw)*HW - ((qh*mw + qw)*HW - q)
    # distribute (i = qh-rh+hh, position r): ((qh+hh)*mw + qw+hw)*HW - ((rh*mw + rw)*HW - r)
    def lead(ph, pw):
        return ((ph + half_h) * mw + pw + half_w) * hw

    def lag(ph, pw, p):
        return (ph * mw + pw) * hw - p

    if mode == "collect":
        attention_index = lead(rh, rw)[:, None] - lag(qh, qw, q)[None, :]   # [HW, Q]
    else:
        attention_index = lead(qh, qw)[None, :] - lag(rh, rw, r)[:, None]   # [HW, Q]
    attention_index = attention_index.reshape(-1)
    if bool(inside.all()):
        return None, attention_index, True
    block_index = inside.reshape(-1).nonzero().squeeze(1)              # [P]
    return block_index, attention_index[block_index], False


def _column_block(attention_flat, hw, indices, q_count, softmax):
    """Attention weights of one block of columns: [N, HW, Q]."""
    block_index, attention_index, covers_all = indices
    values = attention_flat.index_select(1, attention_index)            # [N, P]
    if covers_all:
        scores = values
    else:
        fill = float("-inf") if softmax == "window" else 0.0
        scores = attention_flat.new_full((attention_flat.shape[0], hw * q_count), fill)  # [N, HW*Q]
        scores.index_copy_(1, block_index, values)
    scores = scores.view(-1, hw, q_count)                               # [N, HW, Q]
    return scores if softmax is None else torch.softmax(scores, dim=1)


def _blocks(shape, mh, mw, mode, device, chunk_elements):
    n, _, height, width = shape
    hw = height * width
    q_count = chunk_width(n, hw, chunk_elements)
    for q0 in range(0, hw, q_count):
        q1 = min(q0 + q_count, hw)
        yield q0, q1, column_block_indices(height, width, mh, mw, mode, q0, q1, device)


class _AggregateTorch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, attention, mode, mh, mw, softmax, scale, chunk_elements):
        n, channels, height, width = features.shape
        hw = height * width
        f = features.reshape(n, channels, hw)                           # [N, C, HW]
        a = attention.reshape(n, mh * mw * hw)                          # [N, mh*mw*HW]
        out = f.new_empty(n, channels, hw)
        for q0, q1, indices in _blocks(features.shape, mh, mw, mode, features.device, chunk_elements):
            p = _column_block(a, hw, indices, q1 - q0, softmax)         # [N, HW, Q]
            out[:, :, q0:q1] = torch.bmm(f, p)
        out.mul_(scale)
        ctx.save_for_backward(features, attention, out)
        ctx.settings = (mode, mh, mw, softmax, scale, chunk_elements)
        return out.view(n, channels, height, width)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        features, attention, out = ctx.saved_tensors
        mode, mh, mw, softmax, scale, chunk_elements = ctx.settings
        n, channels, height, width = features.shape
        hw = height * width
        f = features.reshape(n, channels, hw)                           # [N, C, HW]
        a = attention.reshape(n, mh * mw * hw)
        g = grad_out.reshape(n, channels, hw)                           # [N, C, HW]
        need_f, need_a = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_f = torch.zeros_like(f) if need_f else None
        grad_a = torch.zeros_like(a) if need_a else None                # unwritten cells stay 0
        for q0, q1, indices in _blocks(features.shape, mh, mw, mode, features.device, chunk_elements):
            p = _column_block(a, hw, indices, q1 - q0, softmax)         # [N, HW, Q]
            g_blk = g[:, :, q0:q1] * scale                              # [N, C, Q]
            if need_f:
                grad_f.baddbmm_(g_blk, p.transpose(1, 2))
            if need_a:
                dz = torch.bmm(f.transpose(1, 2), g_blk)                # [N, HW, Q]: dP
                if softmax is not None:
                    # sum_r P dP over the whole column = sum_c dOut * out (out carries the scale)
                    delta = (g[:, :, q0:q1] * out[:, :, q0:q1]).sum(dim=1, keepdim=True)  # [N, 1, Q]
                    dz.sub_(delta).mul_(p)
                block_index, attention_index, covers_all = indices
                dz = dz.view(n, -1)
                grad_a.index_copy_(1, attention_index, dz if covers_all else dz.index_select(1, block_index))
        if need_f:
            grad_f = grad_f.view_as(features)
        if need_a:
            grad_a = grad_a.view_as(attention)
        return grad_f, grad_a, None, None, None, None, None, None


def psa_aggregate_torch(features, attention, mode, mh, mw, softmax, scale, chunk_elements=CHUNK_ELEMENTS):
    """Fused aggregation on validated inputs (see psanet_lite.ops.aggregate).

    features [N, C, H, W], attention [N, mh*mw, H, W] of one dtype and device;
    softmax 'reference' | 'window' | None; scale = 1/normalization_factor.
    Returns [N, C, H, W].
    """
    return _AggregateTorch.apply(features, attention, mode, mh, mw, softmax, scale, chunk_elements)
