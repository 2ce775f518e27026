"""A drawing of the PSA module with the tensor shapes of one head at one input size.

The diagram is SVG written from the head's own settings (its layers, mask size, shrink
rule), so the shapes it prints are the ones the head computes: the book draws it for the
model it builds, and it never goes stale.

    diagram = psa_module_diagram(model.decode_head, 17, 17)   # stage-4 map of 17 x 17
    diagram                                                   # shown inline by Jupyter
    diagram.save("psa_module.svg")
"""
from html import escape
from pathlib import Path

BOX_WIDTH, BOX_HEIGHT, ROW = 300, 46, 66
COLUMN_X = (30, 390)  # left edges of the collect and distribute branches
WIDTH = 720
STYLE = (
    "<style>"
    ".box{fill:#f4f6fb;stroke:#4a5a80;stroke-width:1.2}"
    ".psa{fill:#fff4e0;stroke:#b06a00}"
    ".op{font:600 13px sans-serif;fill:#1d2433}"
    ".shape{font:12px monospace;fill:#3c4660}"
    ".head{font:600 14px sans-serif;fill:#1d2433}"
    ".arrow{stroke:#4a5a80;stroke-width:1.3;fill:none;marker-end:url(#tip)}"
    "</style>"
    '<defs><marker id="tip" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
    'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4a5a80"/></marker></defs>'
)


class Diagram:
    """SVG text that Jupyter shows inline (``_repr_svg_``) and that can be saved."""

    def __init__(self, svg):
        self.svg = svg

    def _repr_svg_(self):
        return self.svg

    def save(self, path):
        """Write the SVG to `path`; returns the Path."""
        path = Path(path)
        path.write_text(self.svg)
        return path


def _box(x, y, operation, shape, kind="box"):
    return (f'<rect class="box {kind}" x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6"/>'
            f'<text class="op" x="{x + 10}" y="{y + 19}">{escape(operation)}</text>'
            f'<text class="shape" x="{x + 10}" y="{y + 37}">{escape(shape)}</text>')


def _arrow(x1, y1, x2, y2):
    return f'<path class="arrow" d="M{x1},{y1} L{x2},{y2}"/>'


def _branch_steps(head, direction, c, h, w, hs, ws):
    mh, mw = head.mask_size
    n = head.normalization_factor
    scale = "" if n == 1 else f" / {n:g}"
    return [
        ("reduce: 1x1 conv, BN, ReLU", f"[N, {c}, {h}, {w}]", "box"),
        (f"shrink by {head.shrink_factor} (bilinear)" if head.shrink_factor > 1 else "no shrink (factor 1)",
         f"[N, {c}, {hs}, {ws}]", "box"),
        ("attention: 1x1 ConvBNReLU, 1x1 conv", f"A [N, {mh}*{mw}, {hs}, {ws}]", "box"),
        (f"PSAMask ({direction})", f"Y [N, {hs * ws}, {hs}, {ws}]", "psa"),
        ("softmax over the rows of Y", f"P [N, {hs * ws}, {hs * ws}]", "psa"),
        (f"aggregate: Z = X_r P{scale}", f"Z [N, {c}, {hs}, {ws}]", "psa"),
    ]


def psa_module_diagram(head, height, width):
    """Draw `head` (a PSAHead) applied to an [N, C_in, height, width] stage-4 map.

    Returns a Diagram: both branches (or the one the head has), each step with the shape
    it outputs, then the projection, the skip connection and the classifier.

    >>> from psanet_lite.models import PSAHead
    >>> diagram = psa_module_diagram(PSAHead(64, 16, 5, mask_size=9), 9, 9)
    >>> "Y [N, 25, 5, 5]" in diagram.svg and "PSAMask (distribute)" in diagram.svg
    True
    """
    c_in = head.project.conv.out_channels
    c = head.classifier.in_channels
    classes = head.classifier.out_channels
    pad = head.project.conv.padding[0]
    hs, ws, _ = head.attention_grid(height, width)
    directions = head.directions
    parts = [_box(210, 10, "stage-4 features X", f"[N, {c_in}, {height}, {width}]")]
    top = 10 + ROW + 14
    columns = COLUMN_X if len(directions) == 2 else ((COLUMN_X[0] + COLUMN_X[1]) // 2,)
    for x, direction in zip(columns, directions):
        anchor, label_x = ("end", x + BOX_WIDTH) if x > WIDTH // 2 else ("start", x)
        parts.append(f'<text class="head" text-anchor="{anchor}" x="{label_x}" y="{top - 8}">{direction}</text>')
        parts.append(_arrow(360, 10 + BOX_HEIGHT, x + BOX_WIDTH // 2, top))
        steps = _branch_steps(head, direction, c, height, width, hs, ws)
        for row, (operation, shape, kind) in enumerate(steps):
            y = top + row * ROW
            parts.append(_box(x, y, operation, shape, kind))
            if row:
                parts.append(_arrow(x + BOX_WIDTH // 2, y - ROW + BOX_HEIGHT, x + BOX_WIDTH // 2, y))
        # The shrunk features X_r are what the attention aggregates.
        side = x + BOX_WIDTH + 8 if x == columns[-1] else x - 8
        y_from, y_to = top + ROW + BOX_HEIGHT // 2, top + 5 * ROW + BOX_HEIGHT // 2
        parts.append(f'<path class="arrow" d="M{x + (BOX_WIDTH if side > x else 0)},{y_from} '
                     f'L{side},{y_from} L{side},{y_to} L{x + (BOX_WIDTH if side > x else 0)},{y_to}"/>')
    merge_top = top + 6 * ROW + 10
    last_bottom = top + 5 * ROW + BOX_HEIGHT
    for x in columns:
        parts.append(_arrow(x + BOX_WIDTH // 2, last_bottom, 360, merge_top))
    merged = c * len(directions)
    tail = [
        ("concatenate the branches" if len(directions) > 1 else "one branch: nothing to concatenate",
         f"[N, {merged}, {hs}, {ws}]"),
        (f"project: 1x1 ConvBNReLU, padding {pad}", f"[N, {c_in}, {hs + 2 * pad}, {ws + 2 * pad}]"),
        ("resize (bilinear)", f"[N, {c_in}, {height}, {width}]"),
        ("concatenate with X", f"[N, {2 * c_in}, {height}, {width}]"),
        ("fuse: 3x3 ConvBNReLU", f"[N, {c}, {height}, {width}]"),
        ("dropout, 1x1 classifier", f"logits [N, {classes}, {height}, {width}]"),
    ]
    for row, (operation, shape) in enumerate(tail):
        y = merge_top + row * ROW
        parts.append(_box(210, y, operation, shape))
        if row:
            parts.append(_arrow(360, y - ROW + BOX_HEIGHT, 360, y))
    # The skip connection: X joins the projected context.
    skip_y = merge_top + 3 * ROW + BOX_HEIGHT // 2
    parts.append(f'<path class="arrow" d="M210,{10 + BOX_HEIGHT // 2} L12,{10 + BOX_HEIGHT // 2} '
                 f'L12,{skip_y} L210,{skip_y}"/>')
    height_px = merge_top + len(tail) * ROW
    return Diagram(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height_px}" '
        f'width="100%" style="max-width:{WIDTH}px" role="img" '
        f'aria-label="PSA module with tensor shapes">{STYLE}{"".join(parts)}</svg>'
    )
