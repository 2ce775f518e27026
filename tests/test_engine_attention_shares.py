"""engine.attention_shares: the share of an object's deciding marker (and decoy) in its attention, against uniform."""
import pytest
import torch

from psanet_lite.build import build_model
from psanet_lite.data import MarkerDataset, build_eval_transforms
from psanet_lite.configs import get_config
from psanet_lite.engine import marker_attention_shares, median_shares
from psanet_lite.engine.attention_shares import box_cells, uniform_share

SIDE = 16  # the book model's map: 128 px images at stride 8


class _Attending(torch.nn.Module):
    """Stands in for a model: every receiver puts its weight on chosen cells of each image."""

    def __init__(self, cells_per_image):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.cells = cells_per_image  # list of bool [SIDE, SIDE], or None for uniform attention
        self.seen = 0

    def attention_maps(self, inputs):
        maps = []
        for _ in range(len(inputs)):
            cells = self.cells[self.seen]
            self.seen += 1
            weights = torch.full((SIDE * SIDE,), 1.0) if cells is None else cells.flatten().float()
            maps.append((weights / weights.sum())[:, None, None].expand(-1, SIDE, SIDE))
        return {"collect": torch.stack(maps)}


@pytest.fixture(scope="module")
def data():
    return MarkerDataset("val", length=6), build_eval_transforms(get_config("psanet_lite_markers").data)


def test_box_cells_are_the_cells_a_box_touches():
    cells = box_cells((7, 8, 16, 8), 8, (4, 4))
    assert cells.nonzero().tolist() == [[0, 1], [1, 1], [2, 1]]


def test_uniform_attention_gives_one(data):
    dataset, transform = data
    shares = marker_attention_shares(_Attending([None] * 6), dataset, transform, images=6, batch=4)
    for entry in shares.values():
        assert entry["deciding"] and all(v == pytest.approx(1.0) for v in entry["deciding"] + entry["decoy"])


def test_attention_on_one_marker_gives_the_inverse_of_its_cells_share(data):
    # every receiver of image k looks only at the deciding marker of image k's first object
    dataset, transform = data
    firsts = [dataset.objects(k)[0] for k in range(6)]
    cells = [box_cells(o["marker"], 8, (SIDE, SIDE)) for o in firsts]
    shares = marker_attention_shares(_Attending(cells), dataset, transform, images=6, batch=6)
    first_share = {}
    for o, c in zip(firsts, cells):
        first_share.setdefault(o["shape"], []).append(SIDE * SIDE / int(c.sum()))
    for shape, expected in first_share.items():
        measured = shares[("collect", shape)]["deciding"]
        assert all(any(m == pytest.approx(e) for m in measured) for e in expected)
    decoys = sum(o["decoy"] is not None for k in range(6) for o in dataset.objects(k))
    assert sum(len(e["decoy"]) for e in shares.values()) == decoys


def test_median_shares_pool_both_shapes():
    summary = median_shares({("collect", "disc"): {"deciding": [2.0, 4.0], "decoy": [1.0]},
                             ("collect", "square"): {"deciding": [30.0], "decoy": []}})
    assert summary[("collect", "all")] == {"deciding": 4.0, "decoy": 1.0, "objects": 3}
    assert summary[("collect", "square")]["decoy"] is None


def test_a_real_model_gives_one_entry_per_branch_and_shape(data):
    dataset, transform = data
    model = build_model("psanet_lite_markers").eval()
    shares = marker_attention_shares(model, dataset, transform, images=2)
    assert {branch for branch, _ in shares} == {"collect", "distribute"}
    with pytest.raises(ValueError, match="images must be between 1 and the dataset's 6"):
        marker_attention_shares(model, dataset, transform, images=7)


def test_uniform_share_is_the_mass_on_the_cells_over_their_fraction():
    masks = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 0.5]])  # two masks over 4 cells
    cells = torch.tensor([[False, True], [True, False]])                  # cells 1 and 2: half the map
    assert uniform_share(masks, cells).tolist() == pytest.approx([(0.2 + 0.3) / 0.5, 0.5 / 0.5])
    with pytest.raises(ValueError, match=r"masks must be \[\.\.\., 4\] \(one weight per cell\), got \(2, 3\)"):
        uniform_share(masks[:, :3], cells)
