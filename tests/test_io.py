import errno
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image as PILImage

from msgr_nodes.cli import main
from msgr_nodes.executor import Executor
from msgr_nodes.graph import Graph
from msgr_nodes.image import Image
from msgr_nodes.io.formats import ImageFileError, read_image, write_image

WCS_KEYS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2")


@pytest.fixture
def narrow(small_pair):
    return read_image(small_pair / "narrow.fits")


@pytest.fixture
def rgb(narrow, rng):
    """An RGB image with the narrow image's WCS: three differently scaled copies plus noise."""
    d = narrow.data[0]
    data = np.stack([d, 0.8 * d, 0.6 * d]) + rng.normal(0, 1e-3, (3,) + d.shape).astype(np.float32)
    return Image(np.clip(data, 0, 1), narrow.header, "rgb", {"source_dtype": "float32"})


def _wcs_cards(header):
    return {k: header[k] for k in WCS_KEYS}


@pytest.mark.parametrize("colour", ["mono", "rgb"])
@pytest.mark.parametrize("suffix, depth", [(".fits", "float32"), (".fits.fz", "float32"), (".xisf", "float32"),
                                           (".tif", "float32"), (".tif", "uint16"), (".png", "uint16"),
                                           (".fits", "uint16"), (".xisf", "uint16")])
def test_round_trip_keeps_shape_values_and_wcs(narrow, rgb, tmp_path, colour, suffix, depth):
    img = narrow if colour == "mono" else rgb
    path, fmt, used = write_image(tmp_path / f"out{suffix}", img, bit_depth=depth)
    assert used == depth
    back = read_image(path)
    assert back.data.shape == img.data.shape
    if depth == "float32" and not suffix.endswith(".fz"):
        assert np.array_equal(back.data, img.data)
    elif depth == "float32":
        assert np.allclose(back.data, img.data, atol=1e-6)  # GZIP_2 is lossless for floats
    else:
        assert np.max(np.abs(back.data - np.clip(img.data, 0, 1))) <= 0.5 / 65535 + 1e-7
        assert back.meta["scale"] == 65535.0
    assert _wcs_cards(back.header) == _wcs_cards(img.header)
    radec = [float(v) for v in WCS(back.header, naxis=2).pixel_to_world_values(10, 20)]
    assert radec == pytest.approx([float(v) for v in WCS(img.header, naxis=2).pixel_to_world_values(10, 20)])


def test_jpeg_is_eight_bit_and_looks_the_same(narrow, tmp_path):
    path, _, depth = write_image(tmp_path / "o.jpg", narrow)
    assert depth == "uint8"
    back = read_image(path)
    assert back.data.shape == narrow.data.shape
    assert np.mean(np.abs(back.data - np.clip(narrow.data, 0, 1))) < 0.01


def test_integer_fits_is_scaled_and_written_back_in_its_range(tmp_path, rng):
    raw = rng.integers(0, 65535, (30, 40), dtype=np.uint16)
    fits.writeto(tmp_path / "u16.fits", raw)
    img = read_image(tmp_path / "u16.fits")
    assert img.meta["scale"] == 65535 and img.meta["source_dtype"] == "uint16"
    assert np.allclose(img.data[0] * 65535, raw, atol=0.01)
    write_image(tmp_path / "again.fits", img)  # bit_depth auto keeps uint16
    assert np.array_equal(fits.getdata(tmp_path / "again.fits"), raw)


def test_orientation_fits_row_zero_is_the_bottom_of_a_png(tmp_path):
    data = np.zeros((1, 20, 30), np.float32)
    data[0, 0, :] = 1.0  # FITS row 0: the bottom in Siril, DS9 and the FITS standard
    write_image(tmp_path / "o.png", Image(data))
    px = np.asarray(PILImage.open(tmp_path / "o.png"))
    assert px[-1].min() == 65535 and px[0].max() == 0  # 16-bit PNG: the bottom row of the picture is bright
    write_image(tmp_path / "o.tif", Image(data))
    assert np.array_equal(read_image(tmp_path / "o.tif").data, data)


def test_hwc_and_planar_layouts_are_normalised(tmp_path, rng):
    import tifffile

    hwc = rng.random((20, 30, 3), dtype=np.float32)
    tifffile.imwrite(tmp_path / "hwc.tif", hwc, photometric="rgb")
    assert read_image(tmp_path / "hwc.tif").data.shape == (3, 20, 30)
    fits.writeto(tmp_path / "cube.fits", np.moveaxis(hwc, -1, 0))
    assert np.array_equal(read_image(tmp_path / "cube.fits").data, np.moveaxis(hwc, -1, 0))


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"not an image at all"), "not a readable FITS file"),
    (lambda p: fits.writeto(p, np.zeros((4, 5, 6), np.float32)), "has 4 channels"),
    (lambda p: fits.writeto(p, np.zeros((2, 5, 6), np.float32)), "has 2 channels"),
])
def test_bad_files_get_one_line_errors(tmp_path, make, message):
    p = tmp_path / "bad.fits"
    make(p)
    with pytest.raises(ImageFileError, match=message) as err:
        read_image(p)
    assert "\n" not in str(err.value) and str(p) in str(err.value)


def test_truncated_fits_is_named(narrow, tmp_path):
    write_image(tmp_path / "full.fits", narrow)
    raw = (tmp_path / "full.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageFileError, match=r"cut\.fits.*truncated"):
        read_image(tmp_path / "cut.fits")


def _read_as_nobody(path) -> str:
    """read_image(path) in a forked child that has dropped root's rights (root reads any file, and
    CI runs as root): what it raised, or 'read'."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python 3.12+)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgid(65534)
            os.setuid(65534)
            read_image(path)
            msg = "read"
        except ImageFileError as exc:
            msg = str(exc)
        except BaseException as exc:
            msg = f"child failed: {exc!r}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def test_unreadable_file(narrow):
    folder = Path(tempfile.mkdtemp(prefix="msgr-unreadable-"))  # under /tmp: other users can reach it
    try:
        os.chmod(folder, 0o755)
        write_image(folder / "a.fits", narrow)
        os.chmod(folder / "a.fits", 0o644)
        readable = _read_as_nobody(folder / "a.fits") if os.geteuid() == 0 else "read"
        assert readable == "read"  # the same reader does read it when allowed
        os.chmod(folder / "a.fits", 0)
        if os.geteuid() == 0:
            assert _read_as_nobody(folder / "a.fits") == f"{folder / 'a.fits'}: permission denied (cannot read)"
        else:
            with pytest.raises(ImageFileError, match="permission denied"):
                read_image(folder / "a.fits")
    finally:
        shutil.rmtree(folder)


def test_unsupported_extension(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(ImageFileError, match="unsupported file type '.bmp'"):
        read_image(tmp_path / "a.bmp")


def test_nan_policy(tmp_path):
    data = np.full((10, 10), 0.5, np.float32)
    data[2, 3] = np.nan
    data[4, 4] = np.inf
    fits.writeto(tmp_path / "nan.fits", data)
    with pytest.raises(ImageFileError, match="2 pixel\\(s\\) are NaN or infinite; set nan_policy"):
        read_image(tmp_path / "nan.fits")
    assert read_image(tmp_path / "nan.fits", nan_policy="zero").data[0, 2, 3] == 0
    assert read_image(tmp_path / "nan.fits", nan_policy="median").data[0, 4, 4] == 0.5


def test_load_warns_of_an_uncropped_stacks_black_borders(tmp_path, small_pair):
    """A stack left uncropped (black where not every frame had data) is named on load, with what to
    do; a frame with its own dark pixels or a saturated core is not taken for one."""
    from msgr_nodes.testing import run_node

    data = fits.getdata(small_pair / "narrow.fits").astype(np.float32)
    fits.writeto(tmp_path / "clean.fits", data)
    stack = data.copy()
    stack[:, :40] = 0  # 40 px along the left edge
    stack[:25, :] = 0  # and 25 along the bottom
    fits.writeto(tmp_path / "stack.fits", stack)
    inner = data.copy()
    inner[100:140, 100:140] = 1.0  # a clipped patch inside the frame
    inner[5, 5] = 0.0  # a dead pixel
    fits.writeto(tmp_path / "inner.fits", inner)
    warned = run_node("Load", params={"path": str(tmp_path / "stack.fits")})
    share = float((stack == 0).mean())
    assert warned.metadata["black_borders"] == pytest.approx(share, rel=0.02)
    assert len(warned.warnings) == 1 and "black along its edges" in warned.warnings[0]
    assert "crop it" in warned.warnings[0]
    rgb = np.stack([stack, stack, stack])
    fits.writeto(tmp_path / "rgb.fits", rgb)
    assert run_node("Load", params={"path": str(tmp_path / "rgb.fits")}).metadata["black_borders"] == pytest.approx(share)
    one = np.stack([stack, data, data])  # black in one channel only: a colour, not a border
    fits.writeto(tmp_path / "one.fits", one)
    for name in ("clean.fits", "inner.fits", "one.fits"):
        quiet = run_node("Load", params={"path": str(tmp_path / name)})
        assert not quiet.warnings and "black_borders" not in quiet.metadata


def _graph(tmp_path, src, out):
    g = Graph(base_dir=tmp_path)
    g.add_node("Load", "narrow", {"path": str(src)})
    g.add_node("Save", "save", {"path": str(out)})
    g.link("narrow", "image", "save", "image")
    return g


def test_refused_overwrite_leaves_the_file_byte_identical(tmp_path, small_pair):
    out = tmp_path / "out.fits"
    out.write_bytes(b"precious")
    res = Executor().run(_graph(tmp_path, small_pair / "narrow.fits", out))
    assert "already exists; set overwrite=true" in res.errors["save"]
    assert out.read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_save_never_writes_over_an_input(tmp_path, small_pair):
    src = tmp_path / "n.fits"
    src.write_bytes((small_pair / "narrow.fits").read_bytes())
    g = _graph(tmp_path, src, src)
    g.set("save.overwrite", True)
    res = Executor().run(g)
    assert "is an input of this graph" in res.errors["save"]
    assert src.read_bytes() == (small_pair / "narrow.fits").read_bytes()


def test_failed_write_leaves_no_file(tmp_path, narrow, monkeypatch):
    import msgr_nodes.io.formats as formats

    def broken(tmp, *a, **k):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(formats, "write_fits", broken)
    with pytest.raises(ImageFileError, match=r"o\.fits: cannot be written \(disk full\); nothing was written"):
        write_image(tmp_path / "o.fits", narrow)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "no space left on the device"),
                                        (errno.EROFS, "the file system is read-only"),
                                        (errno.EACCES, "permission denied")])
def test_a_full_disk_or_a_read_only_folder_is_one_clear_line(tmp_path, narrow, monkeypatch, code, says):
    import msgr_nodes.io.formats as formats

    def failing(tmp, *a, **k):
        tmp.write_bytes(b"half")
        raise (PermissionError if code == errno.EACCES else OSError)(code, os.strerror(code))

    monkeypatch.setattr(formats, "write_fits", failing)
    with pytest.raises(ImageFileError, match=says) as e:
        write_image(tmp_path / "o.fits", narrow)
    assert str(tmp_path / "o.fits") in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no partial file either


@pytest.mark.parametrize("suffix", [".fits", ".xisf", ".tif", ".png"])
def test_extract_graph_gives_back_a_runnable_graph(tmp_path, small_pair, suffix, capsys):
    out = tmp_path / f"out{suffix}"
    g = _graph(tmp_path, small_pair / "narrow.fits", out)
    assert Executor().run(g).ok
    assert main(["extract-graph", str(out), "-o", str(tmp_path / "back.json")]) == 0
    back = Graph.load(tmp_path / "back.json")
    assert back.validate() == []
    assert back.meta["produced_by"] == "save"
    back.set("save.path", str(tmp_path / f"again{suffix}"))
    assert back.run().ok
    assert np.array_equal(read_image(tmp_path / f"again{suffix}").data, read_image(out).data)


def test_fits_provenance_extension_and_version_card(tmp_path, small_pair):
    out = tmp_path / "o.fits"
    Executor().run(_graph(tmp_path, small_pair / "narrow.fits", out))
    with fits.open(out) as hdul:
        assert hdul[0].header["MSGRVER"].startswith("msgr-nodes")
        graph = json.loads(bytes(hdul["MSGRGRAF"].data).decode())
    assert graph["nodes"]["narrow"]["params"]["path"] == str(small_pair / "narrow.fits")


def test_edited_input_file_is_read_again(tmp_path):
    src = tmp_path / "in.fits"
    fits.writeto(src, np.full((5, 5), 0.25, np.float32))
    g = Graph(base_dir=tmp_path)
    g.add_node("Load", "narrow", {"path": "in.fits"})
    ex = Executor()
    assert ex.run(g).output("narrow").data.mean() == 0.25
    os.utime(src, ns=(0, 0))
    fits.writeto(src, np.full((5, 5), 0.75, np.float32), overwrite=True)
    res = ex.run(g)
    assert res.computed == ["narrow"] and res.output("narrow").data.mean() == 0.75


def test_writing_a_cached_image_to_fits_does_not_copy_it_whole(tmp_path, rng, monkeypatch):
    """Images from the cache are read-only, and astropy copies a read-only array whole to byte-swap it:
    two Saves of a 6000x4000 RGB image at once held 576 MB more (the pipeline's memory peak). The data
    are written in chunks instead, and read back identical, with the graph and the header."""
    import tracemalloc

    import msgr_nodes.io.formats as formats

    monkeypatch.setattr(formats, "STREAM_CHUNK", 65536)
    data = rng.random((3, 700, 900)).astype(np.float32)  # 7.6 MB
    header = fits.Header()
    header["OBJECT"] = "NGC 1365"
    image = Image(data, header, "corrected", {})
    assert not image.data.flags.writeable
    tracemalloc.start()
    try:
        write_image(tmp_path / "o.fits", image, graph_json='{"nodes": {}}')
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.2 * data.nbytes, peak
    with fits.open(tmp_path / "o.fits") as f:
        f.verify("exception")
        assert np.array_equal(f[0].data, data) and f[0].header["OBJECT"] == "NGC 1365"
        assert f[0].header["EXTEND"] and f[1].name == "MSGRGRAF"
    assert read_image(tmp_path / "o.fits").meta["graph"] == '{"nodes": {}}'
    mono = Image(data[:1], header, "mono", {})
    write_image(tmp_path / "mono.fits", mono)
    assert np.array_equal(fits.getdata(tmp_path / "mono.fits"), data[0])
