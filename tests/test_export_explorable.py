"""The explorable's scenes, page fragment and runtime copy (the browser itself:
tests/test_explorable_browser.py)."""

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from psanet_lite.data.markers import MARGIN, OFFSETS, make_marker_sample
from psanet_lite.export import explorable
from psanet_lite.export.explorable import compose, context_scenes, copy_runtime, explorable_html, marker_scenes

ROOT = Path(__file__).resolve().parents[1]
OTHER = {"disc": "square", "square": "disc"}


def test_marker_scene_sprites_compose_back_into_the_generated_image():
    for scene in marker_scenes(count=3):
        image, label, objects = make_marker_sample(np.random.default_rng(scene["seed"]))
        np.testing.assert_array_equal(compose(scene), image)
        # every object and every marker is a sprite: without them only the grey texture is left
        background = scene["background"]
        assert (background[..., 0] == background[..., 2]).all()
        assert len(scene["sprites"]) == 2 * len(objects) + sum(o["decoy"] is not None for o in objects)


def test_marker_scenes_follow_the_task_rule():
    scenes = marker_scenes(count=4)
    assert [s["sprites"][s["focus"]]["shape"] for s in scenes] == ["disc", "square", "disc", "square"]
    for scene in scenes:
        _, label, _ = make_marker_sample(np.random.default_rng(scene["seed"]))
        sprites = scene["sprites"]
        assert sprites[scene["focus"]]["decoy"] is not None
        for sprite in (s for s in sprites if s.get("object")):
            (top, left), (dy, dx) = sprite["position"], OFFSETS[sprite["shape"]]
            marker = sprites[sprite["marker"]]
            # the object reads its deciding marker at its shape's offset, and takes its colour
            assert marker["position"] == [top + dy - MARGIN, left + dx - MARGIN]
            assert sprite["reads"][:2] == [dy - MARGIN, dx - MARGIN]
            radius = sprite["rgba"].shape[0] // 2
            assert label[top + radius, left + radius] == marker["colour"]
            if sprite["decoy"] is not None:
                decoy = sprites[sprite["decoy"]]
                ody, odx = OFFSETS[OTHER[sprite["shape"]]]
                assert decoy["position"] == [top + ody - MARGIN, left + odx - MARGIN]
                assert decoy["rgba"].shape == marker["rgba"].shape and decoy["colour"] != marker["colour"]
        assert list(scene["pixel"]) == [v + sprites[scene["focus"]]["rgba"].shape[0] // 2
                                        for v in sprites[scene["focus"]]["position"]]


def test_context_scene_composes_its_object_over_the_generated_image():
    scene = context_scenes(count=1)[0]
    image = compose(scene)
    top, left = scene["sprites"][0]["position"]
    assert (image[top + 10, left + 10] == 205).all() and (image[top + 10, left] == 40).all()
    np.testing.assert_array_equal(image[:top], scene["background"][:top])


def test_fragment_embeds_the_model_scenes_and_runtimes(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx </script>")
    scenes = marker_scenes(count=2)
    fragment = explorable_html(model, scenes, ("a", "b", "c", "d"), np.zeros((4, 3), np.uint8), (128, 128),
                               (16, 16), (1, 2, 3), (4, 5, 6), runtime="ort/")
    assert fragment.count("</script>") == 2  # the JSON's and the script's own: nothing closes them early
    spec = json.loads(re.search(r'<script type="application/json">(.*?)</script>', fragment).group(1))
    assert base64.b64decode(spec["model"]) == model.read_bytes()
    assert spec["runtimes"] == [{"url": "ort/", "packed": True}, {"url": explorable.CDN_RUNTIME, "packed": False}]
    sprite = spec["scenes"][1]["sprites"][0]
    rgba = np.frombuffer(base64.b64decode(sprite["rgba"]), np.uint8).reshape(*sprite["size"], 4)
    np.testing.assert_array_equal(rgba, scenes[1]["sprites"][0]["rgba"])
    assert spec["scenes"][0]["focus"] == scenes[0]["focus"]
    assert "reads" in spec["scenes"][0]["sprites"][scenes[0]["focus"]]


def test_the_cdn_serves_the_release_the_book_pins():
    pinned = json.loads((ROOT / "book" / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    locked = json.loads((ROOT / "book" / "package-lock.json").read_text())["packages"]["node_modules/onnxruntime-web"]
    assert explorable.ONNXRUNTIME_WEB_VERSION == pinned == locked["version"]
    assert f"onnxruntime-web@{pinned}/dist/" in explorable.CDN_RUNTIME


def test_copy_runtime_copies_the_scripts_and_packs_the_binary(tmp_path):
    package = tmp_path / "dist"
    package.mkdir()
    for name in explorable.RUNTIME_FILES + (explorable.WASM_BINARY, "ort.webgl.min.js"):
        (package / name).write_bytes(name.encode() * 1000)
    target = tmp_path / "site" / "ort"
    target.mkdir(parents=True)
    (target / explorable.WASM_BINARY).write_bytes(b"left by an earlier build")
    written = copy_runtime(package, target)
    packed = f"{explorable.WASM_BINARY}.gz"
    assert sorted(p.name for p in target.iterdir()) == sorted(explorable.RUNTIME_FILES + (packed,))
    assert gzip.decompress((target / packed).read_bytes()) == (package / explorable.WASM_BINARY).read_bytes()
    assert written == sum(p.stat().st_size for p in target.iterdir())


def test_copy_runtime_names_a_missing_package(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ort\.wasm\.min\.js is missing: is onnxruntime-web installed"):
        copy_runtime(tmp_path, tmp_path / "out")
