"""image.info (dominant colours), image.hash, image.compare and image.quality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageEnhance, ImageFilter

from lensforge.builtin.image import ImagePlugin
from lensforge.builtin.quality import QualityThresholds
from tests.plugins.support import as_image, encode


def test_dominant_colours(image_plugin: ImagePlugin) -> None:
    image = PILImage.new("RGB", (200, 100), (220, 20, 30))
    image.paste((20, 40, 200), (140, 0, 200, 100))  # 30 % blue on the right
    info = image_plugin.info(as_image(image), colors=4)
    first, second = info.dominant_colors[:2]
    assert (first.rgb, first.hex, round(first.share, 2)) == ([220, 20, 30], "#dc141e", 0.7)
    assert (second.rgb, round(second.share, 2)) == ([20, 40, 200], 0.3)
    assert abs(sum(c.share for c in info.dominant_colors) - 1) < 1e-6


def test_resized_and_recompressed_copy_is_a_near_duplicate(
    image_plugin: ImagePlugin, astronaut, coffee
) -> None:
    original = as_image(astronaut)
    copies = [
        as_image(astronaut.resize((300, 300)), "JPEG", quality=60),
        as_image(astronaut.resize((1024, 1024)), "WEBP", quality=70),
        as_image(astronaut, "JPEG", quality=30),
    ]
    every = ["ahash", "phash", "dhash", "whash", "colorhash"]
    for copy in copies:
        verdict = image_plugin.compare(original, copy, algorithms=every)  # type: ignore[arg-type]
        assert verdict.near_duplicate, verdict
    different = image_plugin.compare(original, as_image(coffee.resize((512, 512))))
    assert not different.near_duplicate
    assert all(d.normalized > 0.3 for d in different.distances), different.distances


def test_hashes_are_stable_and_sized(image_plugin: ImagePlugin, astronaut) -> None:
    png = image_plugin.hash(as_image(astronaut))
    bmp = image_plugin.hash(as_image(astronaut, "BMP"))
    assert png == bmp  # same pixels, same hashes, whatever the file format
    assert png.bits == {"ahash": 64, "phash": 64, "dhash": 64, "whash": 64, "colorhash": 42}
    assert all(len(value) == 16 for key, value in png.hashes.items() if key != "colorhash")
    big = image_plugin.hash(as_image(astronaut), algorithms=["phash"], hash_size=16)
    assert big.bits == {"phash": 256} and len(big.hashes["phash"]) == 64


def test_compare_threshold_decides(image_plugin: ImagePlugin, astronaut) -> None:
    edited = astronaut.copy()
    edited.paste((255, 255, 0), (0, 0, 256, 200))  # a big yellow block
    loose = image_plugin.compare(as_image(astronaut), as_image(edited), threshold=1.0)
    strict = image_plugin.compare(as_image(astronaut), as_image(edited), threshold=0.0)
    assert loose.near_duplicate and not strict.near_duplicate
    assert [d.distance for d in loose.distances] == [d.distance for d in strict.distances]
    assert all(d.distance > 0 for d in strict.distances)


def noisy(image: PILImage.Image, sigma: float) -> PILImage.Image:
    pixels = np.asarray(image, dtype=np.float32)
    noise = np.random.default_rng(7).normal(0, sigma, pixels.shape)
    return PILImage.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def flags(image_plugin: ImagePlugin, image: PILImage.Image, **thresholds: float) -> set[str]:
    report = image_plugin.quality(as_image(image), QualityThresholds(**thresholds))
    return {name for name, on in report.flags.model_dump().items() if on}


@pytest.mark.parametrize("photo", ["astronaut", "camera"])
def test_quality_flags(image_plugin: ImagePlugin, photo: str) -> None:
    from skimage import data

    original = PILImage.fromarray(getattr(data, photo)())
    assert flags(image_plugin, original) == set()
    assert flags(image_plugin, original.filter(ImageFilter.GaussianBlur(3))) == {"blurry"}
    darker = ImageEnhance.Brightness(original).enhance(0.3)
    assert "underexposed" in flags(image_plugin, darker)
    assert "blurry" not in flags(image_plugin, darker)  # dark is not blurry
    brighter = ImageEnhance.Brightness(original).enhance(2.5)
    assert "overexposed" in flags(image_plugin, brighter)
    assert flags(image_plugin, noisy(original, 20)) == {"noisy"}
    assert "low_contrast" in flags(image_plugin, ImageEnhance.Contrast(original).enhance(0.1))


def test_quality_thresholds_can_be_overridden(image_plugin: ImagePlugin, astronaut) -> None:
    report = image_plugin.quality(as_image(astronaut))
    assert report.thresholds == QualityThresholds()
    assert flags(image_plugin, astronaut, blur_threshold=report.sharpness + 1) == {"blurry"}
    blurred = astronaut.filter(ImageFilter.GaussianBlur(3))
    assert flags(image_plugin, blurred, blur_threshold=1.0) == set()


def test_quality_measures(image_plugin: ImagePlugin) -> None:
    half = PILImage.new("L", (400, 400), 0)
    half.paste(255, (0, 0, 200, 400))
    report = image_plugin.quality(as_image(half))
    assert (report.shadows_clipped, report.highlights_clipped) == (0.5, 0.5)
    assert report.brightness == 0.5 and report.contrast == 0.5
    assert report.flags.underexposed and report.flags.overexposed
    flat = image_plugin.quality(as_image(PILImage.new("RGB", (64, 64), (128, 128, 128))))
    assert (flat.sharpness, flat.noise, flat.contrast) == (0.0, 0.0, 0.0)
    assert flat.flags.blurry and flat.flags.low_contrast
    large = image_plugin.quality(as_image(PILImage.new("RGB", (3000, 1000), "white")))
    assert (large.analysed_width, large.analysed_height) == (1000, 334)  # reduced 3x, rounding up


def test_image_tools_through_the_api(api, astronaut) -> None:
    png = encode(astronaut)
    info = api.call("image", "info", image=png, colors=3)
    assert len(info["dominant_colors"]) == 3
    hashes = api.call("image", "hash", image=png, algorithms=["phash", "dhash"])
    assert set(hashes["hashes"]) == {"phash", "dhash"}
    copy = encode(astronaut.resize((256, 256)), "JPEG", quality=70)
    verdict = api.call("image", "compare", image=png, other=copy)
    assert verdict["near_duplicate"] is True
    blurred = encode(astronaut.filter(ImageFilter.GaussianBlur(3)))
    quality = api.call("image", "quality", image=blurred, thresholds={"noise_threshold": 50})
    assert quality["flags"]["blurry"] is True
    assert quality["thresholds"]["noise_threshold"] == 50
    status, error = api.error("image", "quality", image=png, thresholds={"blur_threshold": -1})
    assert (status, error["code"]) == (422, "validation_error")
