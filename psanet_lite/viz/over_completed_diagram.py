"""A drawing of one position's over-completed map and the H x W window PSAMask cuts out of it.

Left, the mask of position s = (h, w): m_h x m_w cells (2H-1 x 2W-1 when over-completed),
cell (i, j) standing for the offset (i - c_h, j - c_w) from its centre. Outlined, the cells
that land on the map: for the over-completed mask exactly an H x W window, whose top-left
cell is (c_h - h, c_w - w). Right, the H x W feature map with s marked: the window lands on
it cell for cell. The cells drawn as kept are computed by the same rule psa_mask applies,
and every label gives its shape, so the drawing follows the sizes it is given.

    diagram = over_completed_diagram(3, 4, (1, 2))   # 3 x 4 map, position (1, 2): a 5 x 7 mask
    diagram                                          # shown inline by Jupyter
"""
from html import escape

from psanet_lite.viz.psa_module_diagram import Diagram

CELL = 24  # side of one drawn cell, px
GAP = 90  # between the mask (or its labels) and the map
MARGIN = 20
TOP = 56  # room for the titles above the grids
STYLE = (
    "<style>"
    ".oc-cell{fill:#f4f6fb;stroke:#b9c1d6;stroke-width:1}"
    ".oc-kept{fill:#dde7fb;stroke:#4a5a80}"
    ".oc-centre{fill:#ffd8a8}"
    ".oc-window{fill:none;stroke:#c0392b;stroke-width:2.5;stroke-dasharray:6 3}"
    ".oc-num{font:10px monospace;fill:#3c4660;text-anchor:middle}"
    ".oc-title{font:600 13px sans-serif;fill:#1d2433}"
    ".oc-shape{font:12px monospace;fill:#3c4660}"
    ".oc-arrow{stroke:#c0392b;stroke-width:1.5;fill:none;marker-end:url(#octip)}"
    "</style>"
    '<defs><marker id="octip" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
    'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>'
)


def kept_window(height, width, position, mask_size):
    """Rows and columns (first, stop) of the mask cells of `position` that land on the map.

    Cell (i, j) of the mask at (h, w) points at (h + i - c_h, w + j - c_w); it is kept when
    that lies on the height x width map.

    >>> kept_window(3, 4, (0, 0), (5, 7))   # top-left position: the bottom-right window
    ((2, 5), (3, 7))
    >>> kept_window(3, 4, (1, 1), (3, 3))   # a 3 x 3 mask inside the map: all of it
    ((0, 3), (0, 3))
    """
    (h, w), (mh, mw) = position, mask_size
    ch, cw = (mh - 1) // 2, (mw - 1) // 2
    rows = (max(0, ch - h), min(mh, ch - h + height))
    cols = (max(0, cw - w), min(mw, cw - w + width))
    return rows, cols


def _grid(x0, y0, rows, cols, kept, marked, numbers, attribute):
    (r0, r1), (c0, c1) = kept
    parts = []
    for r in range(rows):
        for c in range(cols):
            kind = "oc-cell"
            if r0 <= r < r1 and c0 <= c < c1:
                kind += " oc-kept"
            if (r, c) == marked:
                kind += " oc-centre"
            x, y = x0 + c * CELL, y0 + r * CELL
            parts.append(f'<rect class="{kind}" {attribute}="{r * cols + c}" x="{x}" y="{y}" '
                         f'width="{CELL}" height="{CELL}"/>')
            if numbers:
                parts.append(f'<text class="oc-num" x="{x + CELL // 2}" y="{y + CELL // 2 + 4}">{r * cols + c}</text>')
    return parts


def over_completed_diagram(height, width, position, mask_size=None):
    """Draw the mask of `position` (h, w) on a height x width map and the window kept of it.

    mask_size defaults to the over-completed (2*height-1, 2*width-1). Returns a Diagram;
    cells are numbered when the mask has at most 100. Each mask cell is a rect with
    data-cell = its index i*m_w + j, the channel of A that holds it (the map's cells carry
    data-position = h*W + w); the kept ones have class "oc-kept". Classes start with oc-,
    so the page's own styles and the drawing's do not meet.

    >>> svg = over_completed_diagram(3, 4, (1, 2)).svg
    >>> "over-completed map of (1, 2): 5 x 7" in svg and "window kept: 3 x 4" in svg
    True
    """
    mh, mw = mask_size or (2 * height - 1, 2 * width - 1)
    h, w = position
    if not (0 <= h < height and 0 <= w < width):
        raise ValueError(f"position must lie on the {height} x {width} map, got {position}")
    ch, cw = (mh - 1) // 2, (mw - 1) // 2
    (r0, r1), (c0, c1) = kept_window(height, width, position, (mh, mw))
    over = (mh, mw) == (2 * height - 1, 2 * width - 1)
    name = "over-completed map" if over else "mask"
    map_x = MARGIN + max(mw * CELL, 330) + GAP  # the mask's labels need about 330 px
    parts = [
        f'<text class="oc-title" x="{MARGIN}" y="18">{escape(f"{name} of {position}: {mh} x {mw}")}</text>',
        f'<text class="oc-shape" x="{MARGIN}" y="36">A[n, :, {h}, {w}]: {mh}*{mw} = {mh * mw} channels, '
        f"centre cell {ch * mw + cw}</text>",
        f'<text class="oc-title" x="{map_x}" y="18">feature map: {height} x {width}</text>',
        f'<text class="oc-shape" x="{map_x}" y="36">position s = {escape(str(position))}</text>',
    ]
    parts += _grid(MARGIN, TOP, mh, mw, ((r0, r1), (c0, c1)), (ch, cw), numbers=mh * mw <= 100,
                   attribute="data-cell")
    parts += _grid(map_x, TOP, height, width, ((0, height), (0, width)), (h, w), numbers=False,
                   attribute="data-position")
    wx, wy = MARGIN + c0 * CELL, TOP + r0 * CELL
    ww, wh = (c1 - c0) * CELL, (r1 - r0) * CELL
    parts.append(f'<rect class="oc-window" x="{wx}" y="{wy}" width="{ww}" height="{wh}"/>')
    # The kept cells land on the map where the cells they point at are.
    lx, ly = map_x + (w + c0 - cw) * CELL, TOP + (h + r0 - ch) * CELL
    parts.append(f'<rect class="oc-window" x="{lx}" y="{ly}" width="{ww}" height="{wh}"/>')
    parts.append(f'<path class="oc-arrow" d="M{wx + ww},{wy + wh // 2} L{lx - 4},{ly + wh // 2}"/>')
    bottom = TOP + max(mh, height) * CELL + 22
    parts.append(f'<text class="oc-shape" x="{MARGIN}" y="{bottom}">window kept: {r1 - r0} x {c1 - c0} '
                 f"(rows {r0}..{r1 - 1}, columns {c0}..{c1 - 1}); the other "
                 f"{mh * mw - (r1 - r0) * (c1 - c0)} cells fall off the map</text>")
    total_width = max(map_x + width * CELL + MARGIN, 620)  # room for the line under the grids
    return Diagram(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total_width} {bottom + 12}" '
        f'width="100%" style="max-width:{total_width}px" role="img" '
        f'aria-label="{escape(name)} of one position and the window PSAMask keeps">{STYLE}{"".join(parts)}</svg>'
    )
