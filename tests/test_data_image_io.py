from pathlib import Path

import cv2
import numpy as np
import pytest

from tpose.data.image_io import ImageReadError, decode_image, encode_jpeg, image_shape, read_image


def test_read_image_is_rgb_uint8(tmp_path: Path) -> None:
    bgr = np.zeros((8, 10, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), bgr)
    image = read_image(path)
    assert image.shape == (8, 10, 3) and image.dtype == np.uint8
    assert (image[..., 0] == 255).all() and (image[..., 2] == 0).all()
    assert image_shape(path) == (8, 10)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError, match="nope.jpg"):
        read_image(path)
    with pytest.raises(OSError, match="nope.jpg"):
        image_shape(path)


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        read_image(path)
    with pytest.raises(ValueError, match="broken.jpg"):  # ImageReadError is also a ValueError
        read_image(path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.jpg"):
        read_image(tmp_path / "empty.jpg")


def test_jpeg_round_trip_keeps_colours() -> None:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:, :8] = (200, 30, 40)
    out = decode_image(encode_jpeg(image, quality=95))
    assert out.shape == image.shape
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 4
