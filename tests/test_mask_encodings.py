"""Every common mask encoding, each from a hand-made file, checked for its exact polyp pixel count."""

import io

import numpy as np
import pytest
from PIL import Image

from helpers.data import ImageCache, decode, decode_mask
from helpers.data.course import mask_summary, mask_warnings
from helpers.data.layouts import load_samples, scan_segmentation

from conftest import write_image

H, W = 40, 48


def _canvas() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def _png(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _box(arr, value, y0=8, y1=24, x0=8, x1=24):
    arr[y0:y1, x0:x1] = value
    return arr


def grey_255():
    return _png(Image.fromarray(_box(_canvas(), 255))), 256


def grey_01():
    return _png(Image.fromarray(_box(_canvas(), 1))), 256


def jpeg_grey_edges():  # a box across JPEG's 8x8 blocks: grey ringing at its edges, on the right side of 128
    data = _png(Image.fromarray(_box(_canvas(), 255, 5, 21, 7, 23)), "JPEG", quality=90)
    assert len(np.unique(np.asarray(Image.open(io.BytesIO(data))))) > 2  # really has grey values
    return data, 256


def rgb_jpeg_like_kvasir():
    return _png(Image.fromarray(_box(_canvas(), 255, 5, 21, 7, 23)).convert("RGB"), "JPEG", quality=90), 256


def sixteen_bit():
    return _png(Image.fromarray(_box(np.zeros((H, W), np.uint16), 65535))), 256


def sixteen_bit_01():
    return _png(Image.fromarray(_box(np.zeros((H, W), np.uint16), 1))), 256


def one_bit():
    return _png(Image.fromarray(_box(_canvas(), 255)).convert("1")), 256


def grey_alpha_is_mask():  # black everywhere; the polyp is the opaque part
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 1] = _box(_canvas(), 255)
    return _png(Image.fromarray(la, "LA")), 256


def rgba_on_transparent_white():  # white background made transparent must not count as polyp
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[..., 3] = _box(_canvas(), 255)
    return _png(Image.fromarray(rgba, "RGBA")), 256


def palette_dark_red():  # index 1 is a dark red (grey value 38): a grey threshold would lose it
    im = Image.fromarray(_box(_canvas(), 1), "P")
    im.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 254)
    return _png(im), 256


def colour_coded_red_green():  # red = neoplastic, green = non-neoplastic, black background
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[8:24, 8:24] = (255, 0, 0)  # grey value 76: the old decoder saw background
    rgb[28:34, 30:40] = (0, 255, 0)
    return _png(Image.fromarray(rgb)), 256 + 60


ENCODINGS = [
    grey_255,
    grey_01,
    jpeg_grey_edges,
    rgb_jpeg_like_kvasir,
    sixteen_bit,
    sixteen_bit_01,
    one_bit,
    grey_alpha_is_mask,
    rgba_on_transparent_white,
    palette_dark_red,
    colour_coded_red_green,
]


@pytest.mark.parametrize("make", ENCODINGS, ids=lambda f: f.__name__)
def test_every_encoding_gives_the_exact_polyp_pixels(make):
    data, expected = make()
    pixels, orig, info = decode_mask(data, None)
    assert orig == (W, H) and pixels.shape == (H, W) and set(np.unique(pixels)) <= {0, 1}
    assert int(pixels.sum()) == expected == info["polyp_pixels"], info["encoding"]
    assert "warning" not in info
    assert np.array_equal(decode(data, None, "mask")[0], pixels)  # one rule, whichever entry point


def test_colour_classes_are_kept_and_counted():
    _, _, info = decode_mask(colour_coded_red_green()[0], None)
    assert info["encoding"] == "colour-coded" and info["colour_classes"] == {"red": 256, "green": 60}
    _, _, info = decode_mask(palette_dark_red()[0], None)
    assert info["colour_classes"] == {"red": 256}
    assert "colour_classes" not in decode_mask(grey_255()[0], None)[2]  # grey masks have no colour classes


def test_a_mask_drawn_too_dark_warns_instead_of_silently_empty():
    pixels, _, info = decode_mask(_png(Image.fromarray(_box(_canvas(), 100))), None)
    assert not pixels.any()
    assert (
        "decodes to no polyp although 256 pixel(s) are drawn" in info["warning"]
        and "brightest value 100" in info["warning"]
    )
    assert "warning" not in decode_mask(_png(Image.fromarray(_canvas())), None)[2]  # a truly empty mask is fine


def test_a_polyp_that_vanishes_when_resized_warns():
    tiny = _canvas()
    tiny[10, 10] = 255
    pixels, _, info = decode_mask(_png(Image.fromarray(tiny)), 8)
    assert not pixels.any() and "vanishes when the mask is resized to 8x8" in info["warning"]


def test_data_report_lists_encodings_colour_classes_and_warnings(tmp_path):
    root = tmp_path / "polyps"
    for name, make in (("a", colour_coded_red_green), ("b", grey_255)):
        write_image(root / "images" / f"{name}.JPEG", size=(W, H))  # upper-case extension, other than the mask's
        (root / "masks").mkdir(exist_ok=True)
        (root / "masks" / f"{name}.png").write_bytes(make()[0])
    write_image(root / "images" / "c.tif", size=(W, H))
    (root / "masks" / "c.bmp").write_bytes(_png(Image.fromarray(_box(_canvas(), 90)), "BMP"))
    samples, bad = scan_segmentation(root)
    assert not bad and len(samples) == 3
    loaded, more = load_samples(samples, 32, ImageCache(tmp_path / "cache"))
    assert not more
    summary = mask_summary({"segmentation": loaded})
    assert summary["encodings"] == {"colour-coded": 1, "grey": 2}
    assert summary["colour_classes"] == {"red": {"masks": 1, "pixels": 256}, "green": {"masks": 1, "pixels": 60}}
    warnings = mask_warnings({"segmentation": loaded})
    assert [w["path"].rsplit("/", 1)[-1] for w in warnings] == ["c.bmp"]
    again, _ = load_samples(samples, 32, ImageCache(tmp_path / "cache"))  # served from the cache, info included
    assert again.mask_info == loaded.mask_info


def test_exif_orientation_is_applied_as_viewers_do():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # a bright band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _png(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes())
    pixels, orig = decode(data, None, "image")
    assert orig == (20, 40) and pixels.shape == (40, 20, 3)
    assert pixels[:10].mean() > 200 and pixels[-10:].mean() < 50  # the band is now at the top


def test_data_command_reports_colour_classes_and_warnings(tmp_path, capsys):
    from helpers.__main__ import main

    root = tmp_path / "colour-polyps"
    (root / "masks").mkdir(parents=True)
    for i in range(6):
        write_image(root / "images" / f"f{i}.jpeg", size=(W, H))
        (root / "masks" / f"f{i}.png").write_bytes(colour_coded_red_green()[0])
    (root / "masks" / "f5.png").write_bytes(_png(Image.fromarray(_box(_canvas(), 90))))  # drawn too dark
    assert main(["data", "--profile", "smoke", "--data-root", str(root), "--reports-root", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert "'colour-coded': 5" in out and "'red': {'masks': 5, 'pixels': 1280}" in out
    assert "warning:" in err and "f5.png: mask decodes to no polyp although 256 pixel(s) are drawn" in err
