"""Images on the wire: base64 or uploaded PNG/JPEG -> grayscale arrays, arrays -> base64 PNG."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from service.runtime.errors import InvalidInput, UnsupportedOperation
from service.runtime.model import ModelRuntime
from service.runtime.sessions import F32

# Decoded images larger than this are refused before their pixels are decoded.
MAX_IMAGE_PIXELS = 4096 * 4096
# Pixels one request may decode, summed over its images (AESERVE_MAX_DECODED_PIXELS): a PNG of
# a few KB can declare 16M pixels, and decoding and resizing costs ~0.1 s of CPU per 16M.
MAX_REQUEST_PIXELS = 4096 * 4096
IMAGE_FORMATS = ("PNG", "JPEG")


def images_from_base64(
    runtime: ModelRuntime, images: list[str], resize: bool, max_pixels: int = MAX_REQUEST_PIXELS
) -> F32:
    """Base64 PNG/JPEG strings -> wire values [N, H, W] in the model's input range."""
    blobs = []
    runtime.check_batch(len(images), "images")
    for i, text in enumerate(images):
        # A browser's data URL (canvas.toDataURL(), FileReader) carries its base64 after a comma.
        if text.startswith("data:"):
            head, _, text = text.partition(",")
            if not head.endswith(";base64"):
                raise InvalidInput(f"images[{i}] is a data URL without ';base64'")
        try:
            blobs.append((f"images[{i}]", base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidInput(f"images[{i}] is not valid base64") from None
    return images_to_array(runtime, blobs, resize, max_pixels)


def images_to_array(
    runtime: ModelRuntime,
    blobs: list[tuple[str, bytes]],
    resize: bool,
    max_pixels: int = MAX_REQUEST_PIXELS,
) -> F32:
    """Encoded images (name, bytes) -> wire values [N, H, W] in the model's input range.

    Every image's size is read from its header first; a request whose images add up to more
    than ``max_pixels`` is refused before any is decompressed."""
    if runtime.kind != "image" or len(runtime.shape) != 2:
        raise UnsupportedOperation(
            f"model '{runtime.name}' takes {runtime.kind} inputs of shape "
            f"{list(runtime.shape)}; images are for grayscale [H, W] image models"
        )
    runtime.check_batch(len(blobs), "images")
    height, width = runtime.shape
    opened = [open_image(name, data) for name, data in blobs]
    total = sum(img.size[0] * img.size[1] for _, img in opened)
    if total > max_pixels:
        raise InvalidInput(
            f"the images add up to {total} pixels; at most {max_pixels} per request are decoded "
            "(AESERVE_MAX_DECODED_PIXELS); send smaller images or fewer per request"
        )
    pixels = np.empty((len(blobs), height, width), dtype=np.uint8)
    for i, (name, img) in enumerate(opened):
        pixels[i] = decode_image(name, img, (height, width), resize, runtime.name)
    return runtime.from_pixels(pixels)


def open_image(name: str, data: bytes) -> tuple[str, Image.Image]:
    """Read an image's header (format and size) without decoding its pixels."""
    try:
        return name, Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt header
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image: {exc}") from None


def decode_image(
    name: str, img: Image.Image, shape: tuple[int, int], resize: bool, model: str
) -> npt.NDArray[np.uint8]:
    """One opened PNG/JPEG -> uint8 grayscale [H, W] (resized when asked)."""
    height, width = shape
    try:
        if img.format not in IMAGE_FORMATS:
            raise InvalidInput(f"{name} is a {img.format} image; send PNG or JPEG")
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise InvalidInput(f"{name} is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS} are accepted")
        if (w, h) != (width, height) and not resize:
            raise InvalidInput(
                f"{name} is {w}x{h} pixels (width x height); model '{model}' expects "
                f"{width}x{height}; send that size or pass resize=true"
            )
        gray = img.convert("L")
        if gray.size != (width, height):
            gray = gray.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(gray, dtype=np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{name} is not a readable PNG or JPEG image: {exc}") from None


def png_base64(pixels: npt.NDArray[np.uint8]) -> list[str]:
    """uint8 [N, H, W] -> base64 PNG strings."""
    out = []
    for image in pixels:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
        out.append(base64.b64encode(buf.getvalue()).decode("ascii"))
    return out
