"""The ignore index has one home (psanet_lite/data/labels.py); every default agrees with it."""
import inspect

from psanet_lite.configs.schema import DataConfig
from psanet_lite.data import labelled_files, transforms
from psanet_lite.data.labels import IGNORE_INDEX
from psanet_lite.engine import loss, metrics
from psanet_lite.viz import palette


def test_every_ignore_index_default_is_the_one_constant():
    # configs sits below data (data imports it), so DataConfig spells the number out.
    assert DataConfig().ignore_index == IGNORE_INDEX == 255
    assert labelled_files.LabelledFiles.ignore_index == IGNORE_INDEX
    functions = [transforms.RandomCropCatMax, transforms.PadTo, transforms.train_transforms,
                 loss.pixel_cross_entropy, loss.segmentation_loss, metrics.confusion_matrix, palette.colorize_labels]
    for function in functions:
        default = inspect.signature(function).parameters["ignore_index"].default
        assert default == IGNORE_INDEX, function
