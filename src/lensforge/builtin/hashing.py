"""Perceptual hashes (``imagehash``) and near-duplicate comparison, for the ``image`` plugin.

A perceptual hash changes little when an image is resized, recompressed or slightly edited,
so the Hamming distance between two hashes says how alike two images look. Distances are
also given normalised by the hash length (0 = identical hashes, about 0.5 = unrelated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

HashAlgorithm = Literal["ahash", "phash", "dhash", "whash", "colorhash"]
ALGORITHMS: tuple[HashAlgorithm, ...] = get_args(HashAlgorithm)
HashSize = Literal[8, 16]
DEFAULT_COMPARE: list[HashAlgorithm] = ["phash", "dhash"]
DEFAULT_THRESHOLD = 0.15  # ~10 of 64 bits: resized/recompressed copies stay far below


class ImageHashes(BaseModel):
    hashes: dict[HashAlgorithm, str] = Field(description="Each hash as hexadecimal text.")
    bits: dict[HashAlgorithm, int] = Field(description="Length of each hash in bits.")
    hash_size: int = Field(
        description="Side of the a/p/d/w hash grid: 8 gives 64-bit hashes, 16 gives 256. "
        "colorhash is always 42 bits."
    )


class HashDistance(BaseModel):
    algorithm: HashAlgorithm
    distance: int = Field(ge=0, description="Hamming distance: bits that differ.")
    bits: int = Field(description="Length of the hash in bits.")
    normalized: float = Field(ge=0, le=1, description="distance / bits.")
    similar: bool = Field(description="normalized <= threshold.")


class ImageComparison(BaseModel):
    near_duplicate: bool = Field(
        description="True when every algorithm's normalised distance is at most the threshold."
    )
    threshold: float
    distances: list[HashDistance]
    image: dict[HashAlgorithm, str] = Field(description="Hashes of the first image (hex).")
    other: dict[HashAlgorithm, str] = Field(description="Hashes of the second image (hex).")


def _prepare(pil: PILImage) -> PILImage:
    if pil.mode in ("RGB", "L"):
        return pil
    if "A" in pil.getbands() or pil.mode == "P":
        # transparent pixels count as white, whatever colour they happen to store
        from PIL import Image as PILImageModule

        rgba = pil.convert("RGBA")
        background = PILImageModule.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImageModule.alpha_composite(background, rgba).convert("RGB")
    return pil.convert("RGB")


def compute(
    pil: PILImage, algorithms: list[HashAlgorithm], hash_size: int = 8
) -> dict[HashAlgorithm, Any]:
    """``imagehash.ImageHash`` objects by algorithm (subtracting two gives their distance)."""
    import imagehash

    image = _prepare(pil)
    # the four grey hashes each start with convert("L"): convert once, their copies are cheap
    grey = image if image.mode == "L" else image.convert("L")
    functions = {
        "ahash": lambda: imagehash.average_hash(grey, hash_size=hash_size),
        "phash": lambda: imagehash.phash(grey, hash_size=hash_size),
        "dhash": lambda: imagehash.dhash(grey, hash_size=hash_size),
        "whash": lambda: imagehash.whash(grey, hash_size=hash_size),
        "colorhash": lambda: imagehash.colorhash(image, binbits=3),
    }
    return {name: functions[name]() for name in dict.fromkeys(algorithms)}


def hash_image(pil: PILImage, algorithms: list[HashAlgorithm], hash_size: int) -> ImageHashes:
    hashes = compute(pil, algorithms, hash_size)
    return ImageHashes(
        hashes={name: str(value) for name, value in hashes.items()},
        bits={name: int(value.hash.size) for name, value in hashes.items()},
        hash_size=hash_size,
    )


def compare_images(
    first: PILImage,
    second: PILImage,
    algorithms: list[HashAlgorithm],
    hash_size: int,
    threshold: float,
) -> ImageComparison:
    a = compute(first, algorithms, hash_size)
    b = compute(second, algorithms, hash_size)
    distances = []
    for name in a:
        bits = int(a[name].hash.size)
        distance = int(a[name] - b[name])
        normalized = distance / bits
        distances.append(
            HashDistance(
                algorithm=name,
                distance=distance,
                bits=bits,
                normalized=round(normalized, 6),
                similar=normalized <= threshold,
            )
        )
    return ImageComparison(
        near_duplicate=all(d.similar for d in distances),
        threshold=threshold,
        distances=distances,
        image={name: str(value) for name, value in a.items()},
        other={name: str(value) for name, value in b.items()},
    )
