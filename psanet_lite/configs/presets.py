"""Named presets: every row of mmsegmentation's PSANet results table, and the book's small model.

The names are mmsegmentation's original (v0.x) config names,
psanet_r{depth}-d8_{crop}_{schedule}_{dataset}; PublishedResult.mmseg_config gives the
current (1.x) name. The published numbers are written here, not read from anywhere at
run time (tests/test_configs_presets.py checks them against the reference table when
it is present).

Ablation variants are overrides, not presets:
    get_config("psanet_lite_context").replace(psa_type="collect")      # collect only
    get_config("psanet_lite_context").replace(psa_type="distribute")   # distribute only
    get_config("psanet_lite_context").replace(decode_head="fcn")       # no attention
"""

from psanet_lite.configs.schema import Config, DataConfig, ModelConfig, PublishedResult, TestConfig, TrainConfig

_DOWNLOAD = "https://download.openmmlab.com/mmsegmentation/v0.5/psanet"

# Per dataset: data settings, mask size, GPUs x images per GPU (batch), and the test mode.
_DATASETS = {
    ("cityscapes", (512, 1024)): dict(
        data=dict(dataset="cityscapes", num_classes=19, crop_size=(512, 1024), scale=(2048, 1024)),
        mask_size=(97, 97), batch=(4, 2), align_corners=False, test=dict(mode="whole"),
    ),
    ("cityscapes", (769, 769)): dict(
        data=dict(dataset="cityscapes", num_classes=19, crop_size=(769, 769), scale=(2049, 1025)),
        mask_size=(97, 97), batch=(4, 2), align_corners=True,
        test=dict(mode="slide", crop_size=(769, 769), stride=(513, 513)),
    ),
    ("ade20k", (512, 512)): dict(
        data=dict(dataset="ade20k", num_classes=150, crop_size=(512, 512), scale=(2048, 512), reduce_zero_label=True),
        mask_size=(66, 66), batch=(4, 4), align_corners=False, test=dict(mode="whole"),
    ),
    ("voc12aug", (512, 512)): dict(
        data=dict(dataset="voc12aug", num_classes=21, crop_size=(512, 512), scale=(2048, 512)),
        mask_size=(97, 97), batch=(4, 4), align_corners=False, test=dict(mode="whole"),
    ),
}

# The results table: depth, dataset, crop, iterations, memory (GB), fps, mIoU, mIoU(ms+flip),
# checkpoint time stamp and hash (V100 for every row; None where the table has '-').
_TABLE = [
    (50, "cityscapes", (512, 1024), 40000, 7.0, 3.17, 77.63, 79.04, "20200606_103117-99fac37c"),
    (101, "cityscapes", (512, 1024), 40000, 10.5, 2.20, 79.14, 80.19, "20200606_001418-27b9cfa7"),
    (50, "cityscapes", (769, 769), 40000, 7.9, 1.40, 77.99, 79.64, "20200530_033717-d5365506"),
    (101, "cityscapes", (769, 769), 40000, 11.9, 0.98, 78.43, 80.26, "20200530_035107-997da1e6"),
    (50, "cityscapes", (512, 1024), 80000, None, None, 77.24, 78.69, "20200606_161842-ab60a24f"),
    (101, "cityscapes", (512, 1024), 80000, None, None, 79.31, 80.53, "20200606_161823-0f73a169"),
    (50, "cityscapes", (769, 769), 80000, None, None, 79.31, 80.91, "20200606_225134-fe42f49e"),
    (101, "cityscapes", (769, 769), 80000, None, None, 79.69, 80.89, "20200606_214550-7665827b"),
    (50, "ade20k", (512, 512), 80000, 9.0, 18.91, 41.14, 41.91, "20200614_144141-835e4b97"),
    (101, "ade20k", (512, 512), 80000, 12.5, 13.13, 43.80, 44.75, "20200614_185117-1fab60d4"),
    (50, "ade20k", (512, 512), 160000, None, None, 41.67, 42.95, "20200615_161258-148077dd"),
    (101, "ade20k", (512, 512), 160000, None, None, 43.74, 45.38, "20200615_161537-dbfa564c"),
    (50, "voc12aug", (512, 512), 20000, 6.9, 18.24, 76.39, 77.34, "20200617_102413-2f1bbaa1"),
    (101, "voc12aug", (512, 512), 20000, 10.4, 12.63, 77.91, 79.30, "20200617_110624-946fef11"),
    (50, "voc12aug", (512, 512), 40000, None, None, 76.30, 77.35, "20200613_161946-f596afb5"),
    (101, "voc12aug", (512, 512), 40000, None, None, 77.73, 79.05, "20200613_161946-1f560f9e"),
]


def _mmseg_preset(depth, dataset, crop, iterations, memory_gb, fps, miou, miou_ms_flip, stamp):
    spec = _DATASETS[(dataset, crop)]
    crop_text = f"{crop[0]}x{crop[1]}"
    name = f"psanet_r{depth}-d8_{crop_text}_{iterations // 1000}k_{dataset}"
    gpus, per_gpu = spec["batch"]
    new_name = f"psanet_r{depth}-d8_{gpus}xb{per_gpu}-{iterations // 1000}k_{dataset}-{crop_text}"
    return Config(
        name=name,
        model=ModelConfig(depth=depth, mask_size=spec["mask_size"], align_corners=spec["align_corners"]),
        data=DataConfig(**spec["data"]),
        train=TrainConfig(
            iterations=iterations,
            batch_size=gpus * per_gpu,
            batch_per_gpu=per_gpu,
            eval_interval=iterations // 10,
            checkpoint_interval=iterations // 10,
        ),
        test=TestConfig(**spec["test"]),
        published=PublishedResult(
            miou=miou,
            miou_ms_flip=miou_ms_flip,
            memory_gb=memory_gb,
            fps=fps,
            device="V100",
            mmseg_config=new_name,
            checkpoint_url=f"{_DOWNLOAD}/{name}/{name}_{stamp}.pth",
            log_url=f"{_DOWNLOAD}/{name}/{name}_{stamp.split('-')[0]}.log.json",
        ),
    )


def _lite_context_preset():
    # num_classes=4: background + the three cue colours of psanet_lite.data.context
    # (build_dataset checks that the two agree).
    return Config(
        name="psanet_lite_context",
        model=ModelConfig(
            backbone="lite",
            channels=64,
            aux_channels=32,
            # 128 px crops give a 16x16 map: attention at full map resolution
            # (shrink 1) with the over-completed mask 2*16-1 = 31.
            shrink_factor=1,
            mask_size=(31, 31),
        ),
        # Not mmsegmentation's augmentation (book chapter 6 shows why): no random rescaling, as
        # a crop of an enlarged image can cut the cue away (so the crop is the whole image and
        # the class-ratio check has nothing to redraw), and no colour jitter, as the cue's
        # colour is the label.
        data=DataConfig(dataset="context", num_classes=4, crop_size=(128, 128), scale=(128, 128),
                        ratio_range=(1.0, 1.0), cat_max_ratio=1.0, photometric_distortion=False),
        # lr 0.05, not mmsegmentation's 0.01 (tuned for ImageNet-initialised backbones): trained
        # from scratch with 0.01 the model finds the objects but not their class in 600 iterations.
        # 1000 iterations: under 5 minutes on 2 CPU cores (benchmarks/ablation_context.py).
        train=TrainConfig(
            iterations=1000, batch_size=8, batch_per_gpu=8, lr=0.05, sync_bn=False, eval_interval=250,
            checkpoint_interval=250,
        ),
        test=TestConfig(mode="whole"),
        notes="The book's small model: 'lite' backbone, 64-128 px images, trains on a CPU in minutes.",
    )


def _lite_markers_preset():
    # The book's small model on the marker dataset (psanet_lite.data.markers), where each
    # object's shape selects the offset of the marker that decides its class. Flips are
    # off: mirrored, a marker to the right would lie to the left, against the task's rule.
    # The book starts these runs from its context runs (model.load_from): from scratch the
    # attention branches get too little gradient to learn where to look within the budget.
    context = _lite_context_preset()
    return context.replace(name="psanet_lite_markers", dataset="markers", flip_prob=0.0,
                           notes="The book's small model on the marker dataset, where the object's shape "
                                 "selects where to look.")


PRESETS = {config.name: config for config in [_mmseg_preset(*row) for row in _TABLE]
           + [_lite_context_preset(), _lite_markers_preset()]}
