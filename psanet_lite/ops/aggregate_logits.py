"""Fused PSA with the logits on the fly: neither the over-completed map nor the matrix.

The attention branch ends in a bias-free 1x1 convolution, so the over-completed map is a
matrix product at every position p:

    A[:, k, p] = W[k] . U[:, p]        U: [N, Cu, H, W] (the convolution's input), W: [K, Cu], K = mh*mw

This route takes U and W instead of A (notation as in ops/aggregate.py: off(k) is cell k's
offset, F the features, nf the normalization factor). It walks over chunks P = p0..p1-1 of
positions, and for each computes the map's columns there, L = W @ U[:, :, P] (stored [N, P, K]),
and puts them where collect's PSAMask puts them: L[k, p] at row t = p + off(k) of column p,
the block B [N, HW, P] (unwritten entries: 0 for softmax 'reference' and None, -inf for
'window'), found by aggregate_torch.column_block_indices.

collect: the columns P of the attention matrix are B itself, whole columns, so
    out[:, :, P] = F @ softmax(B, dim=1) / nf.
distribute: the matrix is collect's transposed, so the chunk gives rows P of it, B^T
[N, P, HW]; each column q spreads over all chunks, and its softmax runs online as in
FlashAttention: with the running max m(q) and sum l(q), per chunk
    m' = max(m, max_P B^T),  E = exp(B^T - m'),
    acc = acc * exp(m - m') + F[:, :, P] @ E,   l = l * exp(m - m') + sum_P E,
and out = acc / (l * nf). Nothing larger than a chunk's [N, max(K, HW), P] exists.

Backward recomputes every chunk (autograd.Function), with G = dOut / nf and the matrix's
probabilities Pr of the chunk (collect: softmax(B); distribute: exp(B^T - m) / l, from
the saved m and l):
    dF      += G_P @ Pr^T (collect)        dF[:, :, P] = G @ Pr^T (distribute)
    dPr      = F^T G_P    (collect)        dPr = F_P^T G          (distribute)
    dB       = Pr * (dPr - delta),  delta(q) = sum_c dOut[c, q] out[c, q]   (no softmax: dB = dPr)
    dL[k, p] = dB at the place of L[k, p],  dW += dL @ U_P^T,  dU[:, :, P] = W^T @ dL.
"""

import torch

from psanet_lite.ops.aggregate_torch import CHUNK_ELEMENTS, chunk_width, column_block_indices


def over_completed_map(reduced, weight):
    """The map itself, A = W U at every position: reduced [N, Cu, H, W], weight [K, Cu] -> [N, K, H, W].

    >>> over_completed_map(torch.ones(1, 2, 3, 3), torch.ones(9, 2)).shape
    torch.Size([1, 9, 3, 3])
    """
    return torch.einsum("kc,nchw->nkhw", weight, reduced)


def _chunks(n, height, width, mh, mw, device, chunk_elements):
    """Yield (p0, p1, block_index or None, logit_index): where in the [HW, P] block and in
    the chunk's logits [P, K] (flat) each written entry of B lies."""
    hw = height * width
    count = chunk_width(n, hw, chunk_elements, rows=max(hw, mh * mw))
    for p0 in range(0, hw, count):
        p1 = min(p0 + count, hw)
        block_index, attention_index, _ = column_block_indices(height, width, mh, mw, "collect", p0, p1, device)
        # attention_index = cell * HW + position (the column p); the logits are [N, P, K]
        logit_index = (attention_index % hw - p0) * (mh * mw) + attention_index.div(hw, rounding_mode="floor")
        yield p0, p1, block_index, logit_index


def _logits(u_chunk, weight):
    """The map's columns at the chunk, [N, P, K] = U_P^T W^T: one matrix product, W not copied."""
    return u_chunk.transpose(1, 2) @ weight.t()


def _block(logits, hw, block_index, logit_index, softmax):
    """B [N, HW, P] from the chunk's logits [N, P, K]."""
    n, count, _ = logits.shape
    values = logits.reshape(n, -1).index_select(1, logit_index)               # [N, written]
    if block_index is None:
        return values.view(n, hw, count)
    fill = float("-inf") if softmax == "window" else 0.0
    block = logits.new_full((n, hw * count), fill)
    return block.index_copy_(1, block_index, values).view(n, hw, count)       # [N, HW, P]


def _logit_gradient(grad_block, shape, block_index, logit_index):
    """dL [N, P, K]: the written entries of dB [N, HW, P] back in the logits' places."""
    n = grad_block.shape[0]
    flat = grad_block.reshape(n, -1)
    picked = flat if block_index is None else flat.index_select(1, block_index)
    return grad_block.new_zeros(n, shape[0] * shape[1]).index_copy_(1, logit_index, picked).view(n, *shape)


def _forward_collect(f, u, weight, shape, softmax, chunk_elements):
    n, _, height, width, mh, mw = shape
    hw = height * width
    out = f.new_empty(f.shape)                                                # [N, C, HW]
    for p0, p1, block_index, logit_index in _chunks(n, height, width, mh, mw, f.device, chunk_elements):
        scores = _block(_logits(u[:, :, p0:p1], weight), hw, block_index, logit_index, softmax)  # [N, HW, P]
        out[:, :, p0:p1] = torch.bmm(f, scores if softmax is None else torch.softmax(scores, dim=1))
    return out, None, None


def _forward_distribute(f, u, weight, shape, softmax, chunk_elements):
    n, channels, height, width, mh, mw = shape
    hw = height * width
    acc = f.new_zeros(n, channels, hw)                                        # [N, C, HW]
    top = f.new_full((n, 1, hw), float("-inf"))                               # running max m
    total = f.new_zeros(n, 1, hw)                                             # running sum l
    for p0, p1, block_index, logit_index in _chunks(n, height, width, mh, mw, f.device, chunk_elements):
        block = _block(_logits(u[:, :, p0:p1], weight), hw, block_index, logit_index, softmax)  # [N, HW, P]
        scores = block.transpose(1, 2)                                        # [N, P, HW]: rows P
        if softmax is None:
            acc.baddbmm_(f[:, :, p0:p1], scores)
            continue
        new_top = torch.maximum(top, scores.amax(dim=1, keepdim=True))
        reference = new_top.masked_fill(new_top == float("-inf"), 0.0)        # 'window': no cell seen yet
        weights = torch.exp(scores - reference)                               # [N, P, HW]
        rescale = torch.exp(top - reference)                                  # [N, 1, HW]
        acc.mul_(rescale).baddbmm_(f[:, :, p0:p1], weights)
        total.mul_(rescale).add_(weights.sum(dim=1, keepdim=True))
        top = new_top
    return (acc, None, None) if softmax is None else (acc / total, top, total)


class _AggregateLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, reduced, weight, mode, mh, mw, softmax, scale, chunk_elements):
        n, channels, height, width = features.shape
        shape = (n, channels, height, width, mh, mw)
        f = features.reshape(n, channels, -1)                                 # [N, C, HW]
        u = reduced.reshape(n, reduced.shape[1], -1)                          # [N, Cu, HW]
        run = _forward_collect if mode == "collect" else _forward_distribute
        out, top, total = run(f, u, weight, shape, softmax, chunk_elements)
        out.mul_(scale)
        ctx.save_for_backward(features, reduced, weight, out, top, total)
        ctx.settings = (mode, shape, softmax, scale, chunk_elements)
        return out.view_as(features)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        features, reduced, weight, out, top, total = ctx.saved_tensors
        mode, shape, softmax, scale, chunk_elements = ctx.settings
        n, channels, height, width, mh, mw = shape
        hw = height * width
        f, u = features.reshape(n, channels, hw), reduced.reshape(n, reduced.shape[1], hw)
        g = grad_out.reshape(n, channels, hw) * scale                         # [N, C, HW]
        # delta(q) = sum_c dOut out: [N, 1, HW]
        delta = None if softmax is None else (grad_out.reshape(n, channels, hw) * out).sum(1, keepdim=True)
        grad_f, grad_u, grad_w = torch.zeros_like(f), torch.zeros_like(u), torch.zeros_like(weight)
        for p0, p1, block_index, logit_index in _chunks(n, height, width, mh, mw, f.device, chunk_elements):
            u_chunk = u[:, :, p0:p1]                                          # [N, Cu, P]
            scores = _block(_logits(u_chunk, weight), hw, block_index, logit_index, softmax)  # [N, HW, P]
            if mode == "collect":
                probs = scores if softmax is None else torch.softmax(scores, dim=1)  # [N, HW, P]: columns P
                grad_f.baddbmm_(g[:, :, p0:p1], probs.transpose(1, 2))
                grad_probs = torch.bmm(f.transpose(1, 2), g[:, :, p0:p1])     # [N, HW, P]
                grad_scores = grad_probs if softmax is None else probs * (grad_probs - delta[:, :, p0:p1])
            else:
                probs = scores if softmax is None else torch.exp(scores - top.transpose(1, 2)) / total.transpose(1, 2)
                grad_f[:, :, p0:p1] = torch.bmm(g, probs)                     # probs^T is rows P of the matrix
                grad_probs = torch.bmm(g.transpose(1, 2), f[:, :, p0:p1])     # [N, HW, P]
                grad_scores = grad_probs if softmax is None else probs * (grad_probs - delta.transpose(1, 2))
            grad_logits = _logit_gradient(grad_scores, (p1 - p0, mh * mw), block_index, logit_index)  # [N, P, K]
            grad_w += grad_logits.flatten(0, 1).t() @ u_chunk.transpose(1, 2).flatten(0, 1)  # [K, Cu]
            grad_u[:, :, p0:p1] = (grad_logits @ weight).transpose(1, 2)  # [N, Cu, P]
        return grad_f.view_as(features), grad_u.view_as(reduced), grad_w, None, None, None, None, None, None


def psa_aggregate_logits_torch(features, reduced, weight, mode, mh, mw, softmax, scale, chunk_elements=CHUNK_ELEMENTS):
    """Fused aggregation from the logits' factors, on validated inputs (see ops/aggregate.py).

    features [N, C, H, W], reduced [N, Cu, H, W], weight [mh*mw, Cu], one dtype and device;
    softmax 'reference' | 'window' | None; scale = 1/normalization_factor. Returns [N, C, H, W].

    >>> f, u, w = torch.randn(1, 4, 3, 5), torch.randn(1, 6, 3, 5), torch.randn(3 * 3, 6)
    >>> psa_aggregate_logits_torch(f, u, w, "distribute", 3, 3, "reference", 1.0).shape
    torch.Size([1, 4, 3, 5])
    """
    return _AggregateLogits.apply(features, reduced, weight, mode, mh, mw, softmax, scale, chunk_elements)
