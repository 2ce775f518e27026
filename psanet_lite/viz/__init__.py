"""Figures and colours: interactive HTML figures for notebooks and the book, palettes,
overlays, and the receptive-field measurements the figures show.

    AttentionFigure        click a pixel, see its collect and distribute masks
    marker_targets         what a marker-data image's objects should attend to, for the figure
    plot_attention_mask    one mask relative to uniform attention in matplotlib (+ attention_colorbar)
    ReceptiveFieldFigure   click an output position, see its receptive fields
    psa_module_diagram     the PSA module drawn with one head's shapes (SVG)
    over_completed_diagram one position's over-completed map and the window kept (SVG)
"""

from psanet_lite.viz.attention_figure import AttentionFigure, read_attention_data
from psanet_lite.viz.attention_plot import attention_colorbar, plot_attention_mask
from psanet_lite.viz.attention_targets import marker_targets
from psanet_lite.data.labels import label_palette
from psanet_lite.viz.over_completed_diagram import over_completed_diagram
from psanet_lite.viz.palette import colorize_labels, colormap_lut, heatmap, overlay
from psanet_lite.viz.psa_module_diagram import psa_module_diagram
from psanet_lite.viz.receptive_field import (
    ReceptiveField,
    effective_area,
    gradient_receptive_field,
    theoretical_receptive_field,
)
from psanet_lite.viz.receptive_field_figure import ReceptiveFieldFigure, read_receptive_field_data

__all__ = [
    "AttentionFigure",
    "ReceptiveField",
    "ReceptiveFieldFigure",
    "attention_colorbar",
    "colorize_labels",
    "colormap_lut",
    "effective_area",
    "gradient_receptive_field",
    "heatmap",
    "label_palette",
    "marker_targets",
    "over_completed_diagram",
    "overlay",
    "plot_attention_mask",
    "psa_module_diagram",
    "read_attention_data",
    "read_receptive_field_data",
    "theoretical_receptive_field",
]
