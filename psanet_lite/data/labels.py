"""What a label value means in every dataset: the ignore index and the class colours.

Label masks hold class indices 0..K-1 and IGNORE_INDEX for pixels that neither
train nor count (mmsegmentation's ignore_index: boundaries, "other", unlabelled).
Datasets without official colours take theirs from label_palette.
"""

import numpy as np

IGNORE_INDEX = 255


def label_palette(num_classes):
    """Distinct colours for class labels: [num_classes, 3] uint8.

    The PASCAL VOC scheme: the bits of the class index are spread over the high
    bits of R, G and B, so neighbouring indices get clearly different colours and
    class 0 (background) is black.

    >>> label_palette(3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for label in range(num_classes):
        bits = label
        for plane in range(7, -1, -1):  # highest bit plane first
            for channel in range(3):
                palette[label, channel] |= ((bits >> channel) & 1) << plane
            bits >>= 3
    return palette
