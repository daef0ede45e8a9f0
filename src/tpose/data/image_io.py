"""Image decoding with errors that name the file: OpenCV silently returns None for missing or corrupt files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageReadError(OSError, ValueError):
    """An image file is missing, unreadable or not a decodable image."""


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as RGB uint8 [H, W, 3]."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image file not found: {path}") from None
    except OSError as err:
        raise ImageReadError(f"cannot read image file {path}: {err}") from err
    return decode_image(data, str(path))


def decode_image(data: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, ...) to RGB uint8 [H, W, 3]; ``name`` identifies the source in errors."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ImageReadError(f"image file is empty: {name}")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"cannot decode image (corrupt or not an image): {name}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 image to JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


def image_shape(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, from its header (without decoding the pixels) when PIL is present."""
    width, height = _header_size(path)
    return height, width


def _header_size(path: str | Path) -> tuple[int, int]:
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except ImportError:
        pass
    except FileNotFoundError:
        raise ImageReadError(f"image file not found: {path}") from None
    except Exception as err:  # PIL raises several types for corrupt headers
        raise ImageReadError(f"cannot read image header (corrupt or not an image): {path}: {err}") from err
    h, w = read_image(path).shape[:2]
    return w, h
