"""Figures and colours: interactive HTML figures for notebooks and the book, palettes,
overlays, and the receptive-field measurements the figures show.

    AttentionFigure        click a pixel, see its collect and distribute masks
    ReceptiveFieldFigure   click an output position, see its receptive fields
    psa_module_diagram     the PSA module drawn with one head's shapes (SVG)
    over_completed_diagram one position's over-completed map and the window kept (SVG)
"""

from psanet_lite.viz.attention_figure import AttentionFigure, read_attention_data
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
    "colorize_labels",
    "colormap_lut",
    "effective_area",
    "gradient_receptive_field",
    "heatmap",
    "label_palette",
    "over_completed_diagram",
    "overlay",
    "psa_module_diagram",
    "read_attention_data",
    "read_receptive_field_data",
    "theoretical_receptive_field",
]
