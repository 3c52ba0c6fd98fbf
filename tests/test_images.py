"""Image reading for odd files (fixtures generated here, no binary blobs) and the mask M."""

import numpy as np
import pytest
import torch
from PIL import Image

from agan.images import (
    ImageReadError,
    crop_to_multiple,
    difference_mask,
    read_image,
    to_tensor,
    to_uint8,
    write_image,
)


def _rgb(h=6, w=5):
    return (np.arange(h * w * 3).reshape(h, w, 3) * 7 % 256).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_read_converts_modes_to_rgb(tmp_path, mode):
    rgb = _rgb()
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # a 16-bit grey PNG
        assert im.mode.startswith("I;16")
        path = tmp_path / "x16.png"
    elif mode == "CMYK":
        im = Image.fromarray(rgb).convert("CMYK")
        path = tmp_path / "x.jpg"
    else:
        im = Image.fromarray(rgb).convert(mode)
        path = tmp_path / f"x_{mode}.png"
    im.save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    if mode == "I;16":
        np.testing.assert_array_equal(out[..., 0], rgb[..., 0])  # 16-bit scaled back to 8-bit exactly
    if mode == "RGBA":
        np.testing.assert_array_equal(out, rgb)


def test_read_honours_exif_orientation(tmp_path):
    rgb = _rgb(4, 8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=100)
    assert read_image(tmp_path / "r.jpg").shape == (8, 4, 3)


def test_read_errors_name_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.png: not an image"):
        read_image(tmp_path / "notes.png")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc ä.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="trunc ä.png"):
        read_image(tmp_path / "trunc ä.png")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_write_is_atomic_and_respects_overwrite(tmp_path):
    p = tmp_path / "o.png"
    write_image(p, _rgb())
    np.testing.assert_array_equal(read_image(p), _rgb())
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_image(p, _rgb(), overwrite=False)
    assert [q.name for q in tmp_path.iterdir()] == ["o.png"]  # no temp files left behind


def test_tensor_roundtrip_and_clipping():
    rgb = _rgb()
    np.testing.assert_array_equal(to_uint8(to_tensor(rgb)), rgb)
    t = torch.tensor([-0.2, 0.5, 1.3]).view(3, 1, 1)
    assert to_uint8(t).ravel().tolist() == [0, 128, 255]


def test_difference_mask_threshold_any_channel():
    clean = np.full((3, 4, 3), 100, np.uint8)
    rain = clean.copy()
    rain[0, 0, 1] = 130  # exactly 30 in one channel -> in M
    rain[1, 1, 2] = 129  # 29 -> not in M
    rain[2, 3, 0] = 60  # -40 -> in M
    m = difference_mask(rain, clean)
    assert m.shape == (1, 3, 4) and m.sum() == 2 and m[0, 0, 0] == 1 and m[0, 2, 3] == 1
    mt = difference_mask(to_tensor(rain), to_tensor(clean))
    assert torch.equal(mt, m)
    dil = difference_mask(to_tensor(rain)[None], to_tensor(clean)[None], dilate=True)
    assert dil.shape == (1, 1, 3, 4) and dil.sum() == 4 + 4  # two 3x3 neighbourhoods clipped at the corners


def test_crop_to_multiple_is_top_left():
    a = np.arange(7 * 9 * 3).reshape(7, 9, 3)
    c = crop_to_multiple(a)
    assert c.shape == (4, 8, 3) and (c == a[:4, :8]).all()
    t = torch.zeros(1, 3, 7, 9)
    assert crop_to_multiple(t).shape == (1, 3, 4, 8)
