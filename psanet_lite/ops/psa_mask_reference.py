"""PSAMask written as the paper describes it: loops over positions and mask cells.

The teaching version. For each position s = (h, w) of the feature map and each
cell (i, j) of the mh x mw mask centred on it, the weight A[:, i*mw + j, h, w]
belongs to the pair (s, t) with t = (h + i - hh, w + j - hw), when t lies on the map:

    collect:    Y[:, t, s] = A[:, i*mw + j, h, w]    (s gathers information from t)
    distribute: Y[:, s, t] = A[:, i*mw + j, h, w]    (s sends information to t)

The loops only decide which weight goes where; the weights themselves are moved by
one indexed copy at the end, so autograd sees a single operation (assigning into Y
entry by entry would record one autograd node per entry).
"""

import torch  # noqa: F401  (the doctest below uses it)


def psa_mask_reference(x, mode, mh, mw):
    """Loop-based PSAMask. x: [N, mh*mw, H, W] (validated by the caller) -> [N, H*W, H, W].

    Slow (one Python iteration per (position, mask cell) inside the map), exact,
    differentiable through autograd.

    >>> psa_mask_reference(torch.ones(1, 9, 2, 2), "collect", 3, 3).sum().item()
    16.0
    """
    n, _, height, width = x.shape
    half_h, half_w = (mh - 1) // 2, (mw - 1) // 2  # mask centre; even masks reach one further down/right
    rows, cols, cells, pos_h, pos_w = [], [], [], [], []
    for h in range(height):
        for w in range(width):
            s = h * width + w
            # Clip the mask window to the rows/columns that land on the map.
            for i in range(max(0, half_h - h), min(mh, height + half_h - h)):
                for j in range(max(0, half_w - w), min(mw, width + half_w - w)):
                    t = (h + i - half_h) * width + (w + j - half_w)
                    row, col = (t, s) if mode == "collect" else (s, t)
                    rows.append(row)
                    cols.append(col)
                    cells.append(i * mw + j)
                    pos_h.append(h)
                    pos_w.append(w)
    y = x.new_zeros(n, height * width, height * width)  # [N, HW, HW]
    y[:, rows, cols] = x[:, cells, pos_h, pos_w]  # [N, K] weights into their K places
    return y.view(n, height * width, height, width)
