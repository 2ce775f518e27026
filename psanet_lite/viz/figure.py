"""The base class of the interactive figures: HTML output, saving, the checks they share.

A figure subclass builds `self.spec` (every number it shows, JSON-serialisable) and
names its script in psanet_lite/viz/static/ (SCRIPT); this class turns that into an
HTML fragment (_embed.render), a notebook display (_repr_html_) and a standalone page.
"""

from psanet_lite.viz import _embed
from psanet_lite.viz.palette import colormap_lut

INTERPOLATIONS = ("bilinear", "nearest")


class Figure:
    """One interactive HTML figure. Subclasses set KIND, SCRIPT and PAGE_TITLE.

    Attributes:
        spec: the data the page embeds (set by the subclass).
        nbytes: size of the HTML fragment, checked against max_bytes by `_finish`.
    """

    KIND: str          # CSS class psanet-fig-<KIND>, element ids, the data block's tag
    SCRIPT: str        # the figure's script in static/
    PAGE_TITLE: str    # title of a saved page

    def _finish(self, data, *, title, cmap, opacity, display_width, interpolation, max_bytes, advice):
        """Set `spec` (the figure's `data` and the display settings every figure has), render
        once, keep the size, refuse a fragment over max_bytes (ValueError naming `advice`)."""
        self.spec = {
            "version": 1, "title": title, **data,
            "lut": _embed.base64_of(colormap_lut(cmap)), "opacity": float(opacity),
            "display_width": int(display_width), "nearest": interpolation == "nearest",
        }
        self.nbytes = _embed.check_size(self.to_html(), max_bytes, advice)

    def __repr__(self):
        return f"{type(self).__name__}({self._describe()}, {self.nbytes / 1e3:.0f} kB)"

    def to_html(self):
        """The figure as an HTML fragment with a fresh element id."""
        return _embed.render(_embed.new_element_id(self.KIND), self.KIND, self.spec, self.SCRIPT)

    def _repr_html_(self):
        return self.to_html()

    def save(self, path, title=None):
        """Write the figure as a standalone .html page (opens offline in any browser)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(_embed.standalone_page(self.to_html(), title or self.PAGE_TITLE))

    @classmethod
    def spec_of(cls, figure):
        """The spec of a figure of this class, of its HTML fragment, or a parsed spec as is."""
        if isinstance(figure, cls):
            return figure.spec
        if isinstance(figure, str):
            return _embed.spec_from_html(figure, cls.KIND)
        return figure


def picker_names(names, count, item):
    """Labels for the picker: `names` as strings, or "<item> 1", "<item> 2", ...

    >>> picker_names(None, 2, "image")
    ['image 1', 'image 2']
    """
    if names is None:
        return [f"{item} {k + 1}" for k in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"got {count} {item}(s) but {len(names)} name(s)")
    return names


def check_interpolation(interpolation):
    """Raise ValueError unless interpolation is 'bilinear' or 'nearest'."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
