"""The decode cache: hits when nothing changed, never stale when a file changes."""

import numpy as np
from PIL import Image

from helpers.data import ImageCache, decode

from conftest import write_image


def test_second_read_is_a_hit(tmp_path):
    img = write_image(tmp_path / "a.jpg")
    cache = ImageCache(tmp_path / "cache")
    first = cache.get(img, 16, "image")
    second = cache.get(img, 16, "image")
    assert (cache.misses, cache.hits) == (1, 1)
    assert np.array_equal(first.pixels, second.pixels) and first.orig_size == second.orig_size == (40, 30)


def test_changed_file_is_re_read(tmp_path):
    img = write_image(tmp_path / "a.png", colour=(10, 10, 10))
    cache = ImageCache(tmp_path / "cache")
    old = cache.get(img, 8, "image")
    write_image(img, colour=(250, 250, 250))  # same path, new content
    new = ImageCache(tmp_path / "cache").get(img, 8, "image")
    assert old.pixels.mean() < 20 and new.pixels.mean() > 240
    assert old.sha256 != new.sha256


def test_size_and_kind_are_part_of_the_key(tmp_path):
    img = write_image(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache")
    assert cache.get(img, 8, "image").pixels.shape == (8, 8, 3)
    assert cache.get(img, 16, "image").pixels.shape == (16, 16, 3)
    assert cache.get(img, 16, "mask").pixels.shape == (16, 16)
    assert cache.misses == 3


def test_damaged_entry_is_rebuilt(tmp_path):
    img = write_image(tmp_path / "a.png")
    cache = ImageCache(tmp_path / "cache")
    good = cache.get(img, 8, "image")
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"garbage")
    again = ImageCache(tmp_path / "cache")
    assert np.array_equal(again.get(img, 8, "image").pixels, good.pixels) and again.misses == 1


def test_mask_threshold_at_128(tmp_path):
    arr = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(arr).save(tmp_path / "m.png")
    pixels, _ = decode((tmp_path / "m.png").read_bytes(), None, "mask")
    assert pixels.tolist() == [[0, 0, 1, 1]]


def test_cache_reads_take_turns_because_np_load_parses_headers_with_ast(tmp_path, monkeypatch):
    """decode_many reads entries from several threads; np.load's header parser (ast.literal_eval) is not
    thread-safe on Python 3.11 (python/cpython#106905), so every read must hold the cache's read lock."""
    from helpers.data import images

    img = tmp_path / "a.png"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(img)
    cache = ImageCache(tmp_path / "cache")
    cache.get(img, 8, "image")  # writes the entry
    held = []
    real_load = images.np.load
    monkeypatch.setattr(
        images.np, "load", lambda *a, **k: held.append(images._CACHE_READ.locked()) or real_load(*a, **k)
    )
    assert cache.get(img, 8, "image").pixels.max() == 7 and cache.hits == 1
    assert held == [True]
