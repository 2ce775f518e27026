"""psanet-lite's own checkpoint format and atomic saving."""

import os

import pytest
import torch

from psanet_lite.build import build_model
from psanet_lite.checkpoint import (
    CheckpointMismatchError,
    atomic_save,
    export_mmseg,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
)
from psanet_lite.configs import Config, get_config


def test_save_then_build_reproduces_model_and_config(tmp_path):
    torch.manual_seed(0)
    config = get_config("psanet_lite_context", num_classes=6, psa_type="collect")
    model = build_model(config).eval()
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(path, model, config, miou=61.25, iteration=500, optimizer={"lr": 0.01})
    checkpoint = load_checkpoint(path)
    assert checkpoint["format"] == "psanet-lite" and checkpoint["format_version"] == 1
    assert Config.from_dict(checkpoint["config"]) == config
    assert checkpoint["metadata"]["miou"] == 61.25 and checkpoint["iteration"] == 500
    assert {"psanet_lite_version", "torch_version", "date"} <= set(checkpoint["metadata"])
    # weights_only=True reads it: builtins and tensors only.
    torch.load(path, weights_only=True)
    rebuilt = build_model(checkpoint=path).eval()
    assert rebuilt.config == config
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_native_checkpoint_into_a_different_model_lists_the_differences(tmp_path):
    config = get_config("psanet_lite_context")
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, build_model(config), config)
    with pytest.raises(CheckpointMismatchError, match="decode_head.classifier.weight"):
        build_model(config.replace(num_classes=7), checkpoint=path)


def test_build_model_without_name_needs_a_native_checkpoint(tmp_path):
    path = tmp_path / "mmseg.pth"
    torch.save(export_mmseg(build_model("psanet_lite_context")), path)
    with pytest.raises(ValueError, match="preset name"):
        build_model(checkpoint=path)
    with pytest.raises(ValueError, match="not a psanet-lite checkpoint"):
        load_checkpoint(path)


def test_newer_format_versions_are_refused(tmp_path):
    config = get_config("psanet_lite_context")
    checkpoint = make_checkpoint(build_model(config), config)
    checkpoint["format_version"] = 99
    path = tmp_path / "future.pt"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="format version 99"):
        load_checkpoint(path)


def test_extra_entries_cannot_overwrite_reserved_ones():
    config = get_config("psanet_lite_context")
    with pytest.raises(ValueError, match="reserved"):
        make_checkpoint(build_model(config), config, model={})


def test_atomic_save_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)
    atomic_save({"step": 2}, path)
    assert torch.load(path)["step"] == 2
    assert os.listdir(tmp_path) == ["last.pt"]


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)
    with pytest.raises(Exception):
        atomic_save({"step": 2, "bad": lambda: None}, path)  # lambdas cannot be pickled
    assert torch.load(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


def test_load_from_starts_the_whole_model_from_a_checkpoint(tmp_path):
    # model.load_from (mmsegmentation's load_from): a new config, the old run's weights
    torch.manual_seed(0)
    trained = build_model("psanet_lite_context").eval()
    path = tmp_path / "context" / "final.pt"
    save_checkpoint(path, trained, trained.config)
    torch.manual_seed(1)
    fresh = build_model("psanet_lite_markers").eval()
    started = build_model("psanet_lite_markers", load_from=str(path)).eval()
    assert started.config.data.dataset == "markers" and started.config.model.load_from == str(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(started(x), trained(x)) and not torch.equal(fresh(x), trained(x))


def test_load_from_another_architecture_names_the_setting_and_the_differences(tmp_path):
    path = tmp_path / "fcn.pt"
    fcn = build_model("psanet_lite_context", decode_head="fcn")
    save_checkpoint(path, fcn, fcn.config)
    with pytest.raises(CheckpointMismatchError, match=r"model\.load_from \(.*fcn\.pt\)"):
        build_model("psanet_lite_markers", load_from=str(path))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": fcn.state_dict()}, foreign)
    with pytest.raises(ValueError, match=r"model\.load_from \(.*foreign\.pt\) is not a psanet-lite checkpoint"):
        build_model("psanet_lite_markers", decode_head="fcn", load_from=str(foreign))
