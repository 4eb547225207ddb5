"""Decode stage: read the header, enforce size limits, then decode only as many pixels as needed.

The size check runs on the header alone (Pillow reads it lazily), so a file that
declares 50,000 x 50,000 pixels is refused before a single pixel is allocated.
JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale when the detector needs
no more, which is most of the cost of a large photo for the default model.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from facesvc.engine.types import Image
from facesvc.errors import ImageTooLargeError, ImageTooSmallError, ImageUndecodableError

# We enforce our own, much tighter, limit from the header before decoding.
PILImage.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
_EXIF_ORIENTATION = 0x0112
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the file says about itself, before any pixel is decoded."""

    format: str
    width: int  # as stored, before EXIF orientation
    height: int
    orientation: int  # EXIF orientation 1..8; 1 = upright

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) after the EXIF orientation is applied."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def read_header(data: bytes, *, min_size: int, max_size: int, max_pixels: int | None = None) -> ImageHeader:
    """Identify the image and check its dimensions without decoding it."""
    if not data:
        raise ImageUndecodableError("The image is empty.", bytes=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(io.BytesIO(data)) as image:
                image_format = image.format or "unknown"
                width, height = image.size
                orientation = _orientation(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageUndecodableError("The bytes are not a readable image.", bytes=len(data)) from error
    if image_format not in SUPPORTED_FORMATS:
        raise ImageUndecodableError(
            f"{image_format} images are not supported; send JPEG, PNG, BMP or WebP.",
            format=image_format,
        )
    if width < min_size or height < min_size:
        raise ImageTooSmallError(
            f"The image is {width}x{height} px; each side must be at least {min_size} px.",
            width=width,
            height=height,
            min_image_size=min_size,
        )
    if width > max_size or height > max_size:
        raise ImageTooLargeError(
            f"The image is {width}x{height} px; no side may exceed {max_size} px.",
            width=width,
            height=height,
            max_image_size=max_size,
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"The image is {width}x{height} px ({width * height / 1e6:.1f} MP); at most "
            f"{max_pixels / 1e6:.1f} MP is accepted.",
            width=width,
            height=height,
            max_image_pixels=max_pixels,
        )
    return ImageHeader(image_format, width, height, orientation)


def _orientation(image: PILImage.Image) -> int:
    # Parse only the EXIF block the header carried: Image.getexif() may decode the
    # whole image (it does for PNG) to look for EXIF after the pixels.
    raw = image.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return 1
    try:
        exif = PILImage.Exif()
        exif.load(raw)
        value = exif.get(_EXIF_ORIENTATION, 1)
    except Exception:  # a malformed EXIF block must not make the photo unusable
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def reduction_for(header: ImageHeader, needed_long_side: int) -> int:
    """The largest libjpeg scale-down (1, 2, 4 or 8) that keeps about `needed_long_side`
    pixels (10% fewer is accepted: a 2500 px photo decodes at 625 px for a 640 px
    detector rather than at 1250 px and then shrinks)."""
    if header.format != "JPEG":
        return 1  # only libjpeg decodes at reduced scale, and cheaper
    long_side = max(header.width, header.height)
    for factor in (8, 4, 2):
        if long_side / factor >= 0.9 * needed_long_side:
            return factor
    return 1


def decode(data: bytes, header: ImageHeader, reduction: int = 1) -> Image:
    """Decode to an upright 8-bit BGR image, `reduction` times smaller than stored."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    flags = _REDUCED_FLAGS[reduction] | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(buffer, flags)
    if pixels is None or pixels.size == 0:
        raise ImageUndecodableError(
            "The image is truncated or corrupt.", format=header.format, bytes=len(data)
        )
    expected = (-(-header.height // reduction), -(-header.width // reduction))
    if abs(pixels.shape[0] - expected[0]) > 1 or abs(pixels.shape[1] - expected[1]) > 1:
        raise ImageUndecodableError("The image's pixels do not match its header.", format=header.format)
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.dtype != np.uint8:  # 16-bit PNGs
        pixels = (pixels // 257).astype(np.uint8)
    return _apply_orientation(pixels, header.orientation)


def _apply_orientation(pixels: Image, orientation: int) -> Image:
    """Turn the pixels upright as EXIF orientation 1..8 says."""
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.flip(cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE), 1)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE), 1)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels


def resize_long_side(pixels: Image, long_side: int) -> tuple[Image, float]:
    """Shrink so the long side is at most `long_side`; returns the image and the scale used."""
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return pixels, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized: Image = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return resized, scale
