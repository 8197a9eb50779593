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
IMAGE_FORMATS = ("PNG", "JPEG")


def images_from_base64(runtime: ModelRuntime, images: list[str], resize: bool) -> F32:
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
    return images_to_array(runtime, blobs, resize)


def images_to_array(runtime: ModelRuntime, blobs: list[tuple[str, bytes]], resize: bool) -> F32:
    """Encoded images (name, bytes) -> wire values [N, H, W] in the model's input range."""
    if runtime.kind != "image" or len(runtime.shape) != 2:
        raise UnsupportedOperation(
            f"model '{runtime.name}' takes {runtime.kind} inputs of shape "
            f"{list(runtime.shape)}; images are for grayscale [H, W] image models"
        )
    runtime.check_batch(len(blobs), "images")
    height, width = runtime.shape
    pixels = np.empty((len(blobs), height, width), dtype=np.uint8)
    for i, (name, data) in enumerate(blobs):
        pixels[i] = decode_image(name, data, (height, width), resize, runtime.name)
    return runtime.from_pixels(pixels)


def decode_image(
    name: str, data: bytes, shape: tuple[int, int], resize: bool, model: str
) -> npt.NDArray[np.uint8]:
    """One PNG/JPEG -> uint8 grayscale [H, W] (resized when asked)."""
    height, width = shape
    try:
        img = Image.open(io.BytesIO(data))
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
