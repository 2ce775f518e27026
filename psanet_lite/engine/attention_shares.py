"""Where a trained model's attention goes on the marker dataset, against uniform attention.

For a receiving position s, column s of an attention matrix (PSA's collect or
distribute, or the non-local head's) is a distribution over the source positions t.
At the centre cell of each object of a MarkerDataset image we take its mass on the
cells of the object's deciding marker, and on the cells of its decoy (the marker of
another colour at the other shape's offset, where the generator drew one), and divide
each by the share uniform attention would give them (their cells over all cells): 1 is
no preference, 10 is ten times the even share.

    shares = marker_attention_shares(model, MarkerDataset("val"), build_eval_transforms(config.data))
    median_shares(shares)[("collect", "disc")]["deciding"]    # e.g. 21.0
"""
import statistics

import torch

TARGETS = ("deciding", "decoy")


def box_cells(box, stride: int, cells: tuple) -> torch.Tensor:
    """Pixel box (y0, x0, y1, x1, inclusive) -> bool [h, w]: the cells of a stride-`stride` map it touches.

    Example:
        >>> box_cells((0, 9, 7, 17), 8, (4, 4)).int().tolist()[0]
        [0, 1, 1, 0]
    """
    y0, x0, y1, x1 = box
    touched = torch.zeros(cells, dtype=torch.bool)
    touched[y0 // stride:y1 // stride + 1, x0 // stride:x1 // stride + 1] = True
    return touched


def uniform_share(masks: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """The weight each mask puts on `cells`, over those cells' fraction of the map (1 = uniform).

    Args:
        masks: [..., P] attention masks, each over the P = h*w positions of a map.
        cells: bool [P] (or [h, w]): the cells of the target.

    Returns [...]: mass on the cells / (cells / P); uniform attention gives 1, all weight on
    the cells gives P / cells.

    Example:
        >>> cells = torch.tensor([True, False, False, False])
        >>> uniform_share(torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]]), cells).tolist()
        [1.0, 4.0]
    """
    cells = cells.flatten()
    if masks.shape[-1] != cells.numel():
        raise ValueError(f"masks must be [..., {cells.numel()}] (one weight per cell), got {tuple(masks.shape)}")
    return masks[..., cells].sum(dim=-1) / cells.float().mean()


def marker_attention_shares(model, dataset, transform, images: int = 100, batch: int = 20) -> dict:
    """Share of each object's deciding marker and decoy at its centre cell, over the uniform share.

    Args:
        model: a PSANet whose decode head has attention (PSA or non-local).
        dataset: a MarkerDataset (its ``objects(i)`` give markers and decoys).
        transform: what turns a read image (uint8 [3, H, W]) into the model's input
            (``build_eval_transforms(config.data)``).
        images: how many of the dataset's first images to measure.
        batch: images per forward pass.

    Returns {(branch, shape): {"deciding": [...], "decoy": [...]}}, one ratio per object
    (per object that has a decoy for "decoy"); branch is 'collect', 'distribute' or
    'non-local', shape 'disc' or 'square'.
    """
    if images < 1 or images > len(dataset):
        raise ValueError(f"images must be between 1 and the dataset's {len(dataset)}, got {images}")
    device = next(model.parameters()).device
    shares = {}
    for start in range(0, images, batch):
        indices = range(start, min(start + batch, images))
        inputs = torch.stack([transform(dataset.read(k)[0]) for k in indices]).to(device)
        maps = {branch: y.cpu() for branch, y in model.attention_maps(inputs).items()}  # [N, h*w, h, w] each
        for n, k in enumerate(indices):
            for obj in dataset.objects(k):
                boxes = {"deciding": obj["marker"], "decoy": obj["decoy"]}
                for branch, y in maps.items():
                    h, w = y.shape[-2:]
                    stride = dataset.size // h
                    cy, cx = obj["centre"]
                    column = y[n, :, cy // stride, cx // stride]  # [h*w]: every source's weight at the centre
                    entry = shares.setdefault((branch, obj["shape"]), {t: [] for t in TARGETS})
                    for target, box in boxes.items():
                        if box is None:
                            continue
                        entry[target].append(uniform_share(column, box_cells(box, stride, (h, w))).item())
    return shares


def median_shares(shares: dict) -> dict:
    """{(branch, shape): {"deciding": median, "decoy": median or None, "objects": count}}, and per
    branch over both shapes under (branch, "all").

    Example:
        >>> median_shares({("collect", "disc"): {"deciding": [1.0, 30.0, 20.0], "decoy": []}})
        {('collect', 'disc'): {'deciding': 20.0, 'decoy': None, 'objects': 3}, ('collect', 'all'): {'deciding': 20.0, 'decoy': None, 'objects': 3}}
    """
    pooled = {}
    for (branch, _), entry in shares.items():
        into = pooled.setdefault((branch, "all"), {t: [] for t in TARGETS})
        for target in TARGETS:
            into[target] += entry[target]

    def summary(entry):
        return {**{t: statistics.median(entry[t]) if entry[t] else None for t in TARGETS},
                "objects": len(entry["deciding"])}

    return {key: summary(entry) for key, entry in {**shares, **pooled}.items()}
