"""The training loop in-process, on the generated context dataset with a tiny budget."""
import json

import pytest
import torch

from psanet_lite import data
from psanet_lite.build import build_model
from psanet_lite.checkpoint import load_checkpoint
from psanet_lite.configs import get_config
from psanet_lite.engine.trainer import TrainOptions, accumulation_steps, train
from psanet_lite.engine.training_state import latest_checkpoint, load_training_state


@pytest.fixture
def tiny_context(monkeypatch):
    monkeypatch.setitem(data.CONTEXT_LENGTHS, "val", 4)
    return get_config("psanet_lite_context", iterations=4, batch_size=2, batch_per_gpu=2, lr=0.01,
                      checkpoint_interval=2, eval_interval=4)


def test_training_writes_checkpoints_logs_and_weights(tmp_path, tiny_context):
    options = TrainOptions(workers=0, log_interval=1, progress=False, keep_checkpoints=0)
    summary = train(tiny_context, tmp_path, options)

    assert summary["iterations"] == 4 and 0 <= summary["mIoU"] <= 1
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert [r["iteration"] for r in train_records] == [1, 2, 3, 4]
    # poly schedule by hand: lr(i) = (0.01 - 1e-4) * (1 - i/4) ** 0.9 + 1e-4, logged for the step's i - 1
    expected = [(0.01 - 1e-4) * (1 - i / 4) ** 0.9 + 1e-4 for i in range(4)]
    assert [r["lr"] for r in train_records] == pytest.approx(expected)
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 for r in train_records)
    assert [r["iteration"] for r in records if "mIoU" in r] == [4]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter_0000002.pt", "iter_0000004.pt"]
    state = load_training_state(latest_checkpoint(tmp_path))
    assert state["iteration"] == 4 and state["data_step"] == 4 and state["world_size"] == 1
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    assert state["config"]["train"]["iterations"] == 4

    final = load_checkpoint(tmp_path / "final.pt")
    model = build_model(checkpoint=str(tmp_path / "final.pt"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state["model"].items())
    assert final["metadata"]["miou"] == pytest.approx(100 * summary["mIoU"])


def test_a_used_work_dir_needs_resume(tmp_path, tiny_context):
    options = TrainOptions(workers=0, progress=False, evaluate=False)
    train(tiny_context.replace(iterations=2), tmp_path, options)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_context.replace(iterations=2), tmp_path, options)
    resume = TrainOptions(workers=0, progress=False, evaluate=False, resume="auto", log_interval=1)
    with pytest.raises(ValueError, match=r"train\.lr: 0\.01 in the checkpoint, 0\.02 now"):
        train(tiny_context.replace(iterations=2, lr=0.02), tmp_path, resume)
    with pytest.raises(ValueError, match="at iteration 2: train.iterations must be at least that"):
        train(tiny_context.replace(iterations=1), tmp_path, resume)


def test_resume_with_more_iterations_extends_a_finished_run(tmp_path, tiny_context, capsys):
    options = TrainOptions(workers=0, progress=False, evaluate=False, log_interval=1)
    train(tiny_context.replace(iterations=2), tmp_path, options)
    summary = train(tiny_context.replace(iterations=5), tmp_path,
                    TrainOptions(workers=0, progress=False, evaluate=False, log_interval=1, resume="auto"))
    out = capsys.readouterr().out
    assert "extending the run from 2 to 5 iterations" in out
    assert f"resuming from {tmp_path / 'checkpoints' / 'iter_0000002.pt'} at iteration 2" in out
    assert summary["iterations"] == 5 and load_training_state(latest_checkpoint(tmp_path))["iteration"] == 5
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5]
    # iterations 3-5 follow the poly schedule of a 5-iteration run (by hand, as above)
    expected = [(0.01 - 1e-4) * (1 - i / 5) ** 0.9 + 1e-4 for i in (2, 3, 4)]
    assert [r["lr"] for r in records[2:]] == pytest.approx(expected)


def test_a_diverging_run_stops_and_keeps_its_good_checkpoints(tmp_path, tiny_context):
    from psanet_lite.engine.trainer import NonFiniteLoss

    options = TrainOptions(workers=0, progress=False, evaluate=False, keep_checkpoints=0)
    with pytest.raises(NonFiniteLoss, match="training diverged: .* stopped without writing final.pt"):
        train(tiny_context.replace(iterations=40, lr=1e6), tmp_path, options)
    assert not (tmp_path / "final.pt").exists()
    for path in (tmp_path / "checkpoints").glob("iter_*.pt"):
        assert all(torch.isfinite(t).all() for t in load_checkpoint(path)["model"].values() if t.is_floating_point())


def test_accumulation_makes_up_the_global_batch():
    train_cfg = get_config("psanet_r50-d8_512x1024_40k_cityscapes").train  # 8 images, 2 per GPU
    assert [accumulation_steps(train_cfg, w) for w in (1, 2, 4)] == [4, 2, 1]
    with pytest.raises(ValueError, match="not a multiple"):
        accumulation_steps(train_cfg, 3)


def test_resume_from_a_middle_checkpoint_across_an_evaluation(tmp_path, tiny_context):
    # evaluation at iteration 2 comes after the checkpoint of iteration 2: a run
    # resumed from that checkpoint skips it, so it must not touch any random stream
    options = TrainOptions(workers=0, progress=False, keep_checkpoints=0, device="cpu")  # bit-exact on CPU
    config = tiny_context.replace(eval_interval=2)
    train(config, tmp_path / "whole", options)
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    middle = tmp_path / "resumed" / "checkpoints" / "iter_0000002.pt"
    middle.write_bytes((tmp_path / "whole" / "checkpoints" / "iter_0000002.pt").read_bytes())
    train(config, tmp_path / "resumed", TrainOptions(workers=0, progress=False, resume="auto", device="cpu"))
    whole = load_checkpoint(tmp_path / "whole" / "final.pt")["model"]
    resumed = load_checkpoint(tmp_path / "resumed" / "final.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps(tmp_path, tiny_context, amp):
    options = TrainOptions(workers=0, progress=False, evaluate=False, amp=amp, log_interval=1)
    train(tiny_context.replace(iterations=2), tmp_path, options)
    state = load_training_state(latest_checkpoint(tmp_path))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
    if amp == "fp16":
        assert state["scaler"]["scale"] > 0  # the grad scaler is on and saved
    else:
        assert state["scaler"] == {}  # bf16 needs no scaling
