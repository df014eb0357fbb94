"""Opening untrusted image files safely, into one predictable form: an 8-bit RGB picture.

Every file goes through `image_open`, which either returns a fully decoded RGB image with
EXIF orientation applied, or raises ImageRejected with a reason a researcher can act on. The
pixel count is checked from the header before any pixel is decoded (decompression bombs), the
file is verified and then fully decoded (truncation shows only then), animated images give
their first frame, every colour mode (CMYK, palette, alpha, 16-bit, LA, I;16) becomes RGB, and
the metadata (EXIF, XMP, comments, ICC profile) is dropped.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
MAX_FILE_BYTES = 60 * 1024 * 1024
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF"})

REJECT_EMPTY = "empty file (0 bytes)"
REJECT_TOO_BIG_FILE = "file is {size} bytes; the limit is {limit} bytes"
REJECT_NOT_IMAGE = "not an image (the content is not a format Pillow recognises)"
REJECT_FORMAT = "image format {format} is not accepted (accepted: {allowed})"
REJECT_BOMB = (
    "decompression bomb refused: {width}×{height} = {pixels:,} pixels exceeds the limit of "
    "{limit:,} pixels"
)
REJECT_BOMB_PILLOW = "decompression bomb refused: {detail}"
REJECT_DIMENSIONS = "image too large: {width}×{height}; each side may be at most {limit} px"
REJECT_ZERO_SIZE = "image has no pixels ({width}×{height})"
REJECT_CORRUPT = "corrupt or truncated image: {detail}"

NOTE_ROTATED = "EXIF orientation {orientation} applied"
NOTE_ANIMATED = "animated image: first of {frames} frames used"
NOTE_CONVERTED = "converted from {mode} to RGB"


class ImageRejected(ValueError):
    """The file cannot be used as an image; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass(frozen=True)
class OpenedImage:
    image: Image.Image  # RGB, EXIF orientation applied, fully decoded
    format: str
    notes: tuple[str, ...]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


SUFFIX_FOR_FORMAT = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


def image_open(data: bytes, *, limits: ImageLimits = ImageLimits()) -> OpenedImage:
    """Decode `data` into an RGB image or raise ImageRejected; never raises anything else."""
    if not data:
        raise ImageRejected(REJECT_EMPTY)
    if len(data) > limits.max_file_bytes:
        raise ImageRejected(REJECT_TOO_BIG_FILE.format(size=len(data), limit=limits.max_file_bytes))
    try:
        return _open(data, limits)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(REJECT_BOMB_PILLOW.format(detail=exc)) from None
    except Exception as exc:  # a hostile file can make any decoder raise anything
        detail = f"{type(exc).__name__}: {exc}"[:300]
        raise ImageRejected(REJECT_CORRUPT.format(detail=detail)) from None


def _open(data: bytes, limits: ImageLimits) -> OpenedImage:
    with warnings.catch_warnings():
        # Our own limit applies first; Pillow's warning would otherwise go to the log only.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            probe = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected(REJECT_NOT_IMAGE) from None
        fmt = probe.format or "unknown"
        if fmt not in ALLOWED_FORMATS:
            raise ImageRejected(
                REJECT_FORMAT.format(format=fmt, allowed=", ".join(sorted(ALLOWED_FORMATS)))
            )
        width, height = probe.size
        _check_size(width, height, limits)
        probe.verify()  # structure and checksums; the image is unusable afterwards

        image: Image.Image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        notes: list[str] = []
        if frames > 1:
            image.seek(0)
            notes.append(NOTE_ANIMATED.format(frames=frames))
        image.load()  # the full decode: truncated data fails here
        orientation = image.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            image = ImageOps.exif_transpose(image)
            notes.append(NOTE_ROTATED.format(orientation=orientation))
            _check_size(image.width, image.height, limits)
        if image.mode != "RGB":
            notes.append(NOTE_CONVERTED.format(mode=image.mode))
            image = _to_rgb(image)
    # Metadata stays behind: Pillow copies `info` into every crop, resize and convert, and
    # its JPEG writer re-embeds a comment found there, so nothing derived from an upload
    # (crops, display copies, source views) may carry it to a coder.
    image.info = {}
    return OpenedImage(image=image, format=fmt, notes=tuple(notes))


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected(REJECT_ZERO_SIZE.format(width=width, height=height))
    if width * height > limits.max_pixels:
        raise ImageRejected(
            REJECT_BOMB.format(
                width=width, height=height, pixels=width * height, limit=limits.max_pixels
            )
        )
    if max(width, height) > limits.max_side:
        raise ImageRejected(
            REJECT_DIMENSIONS.format(width=width, height=height, limit=limits.max_side)
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit grey: scale the used range to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        # Transparent areas become white, as a browser shows them on a white page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def image_from_array(array: np.ndarray) -> Image.Image:
    """An RGB image from a uint8 array (H×W or H×W×3), e.g. scikit-image's sample photos."""
    if array.ndim == 2:
        return Image.fromarray(array.astype(np.uint8), mode="L").convert("RGB")
    return Image.fromarray(array[..., :3].astype(np.uint8), mode="RGB")
