"""Real photographs and generated hostile files for the ingestion tests (no network)."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from functools import cache

import numpy as np
from PIL import Image

FAIRFACE_DIRS = ("../shared/data/fairface540", "../../shared/data/fairface540")


@cache
def astronaut(side: int = 256) -> Image.Image:
    """scikit-image's astronaut photograph (Eileen Collins): one real face."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BILINEAR)


@cache
def cat(side: int = 256) -> Image.Image:
    """scikit-image's chelsea photograph: a cat, no human face."""
    from skimage import data

    image = Image.fromarray(data.chelsea())
    return image.resize((side, round(side * image.height / image.width)))


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def good_jpeg(side: int = 256) -> bytes:
    return encode(astronaut(side), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    data = good_jpeg()
    return data[: len(data) * 6 // 10]


def corrupt_png() -> bytes:
    """A PNG whose image data was damaged (the chunk checksum no longer matches)."""
    data = bytearray(encode(astronaut(64), "PNG"))
    start = data.index(b"IDAT") + 20
    for i in range(start, start + 40):
        data[i] ^= 0x5A
    return bytes(data)


def html_as_jpeg() -> bytes:
    return b"<!doctype html><html><script>alert('x')</script></html>\n"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (decompression-bomb shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    row = b"\x00" + b"\x00" * width
    # Only a few rows of real data: the header alone must get the file refused.
    idat = zlib.compress(row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def cmyk_jpeg() -> bytes:
    return encode(astronaut().convert("CMYK"), "JPEG")


def palette_png() -> bytes:
    return encode(astronaut().convert("P", palette=Image.Palette.ADAPTIVE), "PNG")


def alpha_png() -> bytes:
    image = astronaut().convert("RGBA")
    image.putalpha(200)
    return encode(image, "PNG")


def la_png() -> bytes:
    return encode(astronaut().convert("LA"), "PNG")


def grey16_png() -> bytes:
    grey = np.asarray(astronaut().convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey)
    assert image.mode == "I;16"
    return encode(image, "PNG")


def rotated_with_exif(orientation: int = 6) -> bytes:
    """The astronaut stored on its side, with the EXIF tag that says how to turn it upright."""
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright = astronaut().crop((0, 0, 256, 192))  # landscape, so the turn shows in the size
    return encode(upright.transpose(turn), "JPEG", exif=exif.tobytes())


def animated_gif(frames: int = 3) -> bytes:
    first = astronaut()
    rest = [Image.effect_noise(first.size, 40).convert("RGB") for _ in range(frames - 1)]
    return encode(first, "GIF", save_all=True, append_images=rest, duration=100, loop=0)


def zip_bytes(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()
