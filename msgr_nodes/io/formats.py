"""Image readers and writers: FITS (also tile-compressed .fz), XISF, TIFF, PNG, JPEG.

Array convention: data is float32 (C, H, W), C = 1 or 3, in the FITS array
order: row 0 is FITS row 0, which the FITS standard (and Siril, DS9) draws at
the **bottom**. The WCS cards therefore stay valid unchanged. Formats whose row
0 is the top of the picture (TIFF, PNG, JPEG) are flipped vertically on read
and on write, so a FITS image saved as PNG looks the same way up as in Siril.
XISF is stored in the same row order as FITS, as PixInsight does when it
converts between the two (its default FITS orientation puts row 0 first).

Integer samples are divided by the maximum of their type (uint16 -> /65535);
float samples keep their values. ``meta["scale"]`` and ``meta["source_dtype"]``
record this so Save can write the original range back.
"""
from __future__ import annotations

import errno
import json
import os
import struct
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import MsgrError
from ..image import Image
from .atomic import atomic_path

FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".fz": "fits", ".xisf": "xisf",
           ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
BIT_DEPTHS = {"fits": ("float32", "uint16", "uint8"), "xisf": ("float32", "uint16", "uint8"),
              "tiff": ("float32", "uint16", "uint8"), "png": ("uint16", "uint8"), "jpeg": ("uint8",)}
PROVENANCE_EXT = "MSGRGRAF"
PROVENANCE_KEY = "msgr-nodes:graph"


class ImageFileError(MsgrError):
    """A file that cannot be read or written, with the reason."""


# warnings.catch_warnings() swaps a process-wide filter list: two FITS reads in two threads would
# see each other's warnings (and name the wrong file truncated), so FITS reads take turns.
_FITS_READ_LOCK = threading.Lock()


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux, else physical RAM)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1024**3:.1f} GB"


def check_fits_size(path, width: int, height: int, channels: int, raw_bytes_per_sample: int) -> None:
    """Refuse, before allocating, an image whose float32 copy (plus the raw samples) cannot fit
    in the memory available now."""
    need = width * height * channels * (4 + raw_bytes_per_sample)
    have = available_memory()
    if need > 0.8 * have:
        raise ImageFileError(f"{path}: {width}x{height} px x {channels} channel(s) needs about {_gb(need)} of "
                             f"memory to load, and {_gb(have)} is available: crop or bin the image first "
                             f"(or check its header: NAXIS1/NAXIS2 may be wrong)")


def format_of(path: str | os.PathLike, explicit: str = "auto") -> str:
    """The format name of a path (from its extension), or the explicit one; unsupported types raise."""
    if explicit and explicit != "auto":
        return explicit
    name = str(path).lower()
    for suffix in (".fits.fz", ".fit.fz"):
        if name.endswith(suffix):
            return "fits"
    ext = Path(name).suffix
    if ext not in FORMATS:
        raise ImageFileError(f"{path}: unsupported file type {ext or '(none)'!r}; "
                             f"use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


def _to_float(arr: np.ndarray, path) -> tuple[np.ndarray, dict]:
    dt = arr.dtype
    if dt.kind in "ui":
        scale = float(np.iinfo(dt).max)
        return arr.astype(np.float32) / np.float32(scale), {"scale": scale, "source_dtype": dt.name}
    if dt.kind == "f":
        return arr.astype(np.float32, copy=False), {"scale": 1.0, "source_dtype": dt.name}
    if dt.kind == "b":
        return arr.astype(np.float32), {"scale": 1.0, "source_dtype": "bool"}
    raise ImageFileError(f"{path}: unsupported sample type {dt}")


def _to_chw(arr: np.ndarray, path, channels_last: bool) -> np.ndarray:
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if channels_last:
            arr = np.moveaxis(arr, -1, 0)
        if arr.shape[0] in (1, 3):
            return arr
        raise ImageFileError(f"{path}: has {arr.shape[0]} channels; msgr-nodes takes mono (1) or RGB (3) "
                             f"images: split or convert it first")
    raise ImageFileError(f"{path}: a {arr.ndim}-dimensional array is not an image (shape {arr.shape})")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ImageFileError(f"{path}: no such file")
    if path.is_dir():
        raise ImageFileError(f"{path}: is a folder, not an image file")
    if not os.access(path, os.R_OK):
        raise ImageFileError(f"{path}: permission denied (cannot read)")


# ---------------------------------------------------------------------------- readers
def read_fits(path: Path, hdu: int = -1) -> tuple[np.ndarray, fits.Header, dict]:
    """FITS (also .fz): (data (C, H, W) float32, header, meta); ``hdu`` -1 = the first image HDU."""
    with _FITS_READ_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                if hdu >= 0:
                    if hdu >= len(hdul):
                        raise ImageFileError(f"{path}: has {len(hdul)} HDUs, no HDU {hdu}")
                    chosen = hdul[hdu]
                else:
                    chosen = next((h for h in hdul if h.is_image and _image_dims(h.header)), None)
                    if chosen is None:
                        raise ImageFileError(f"{path}: holds no image data")
                dims = _image_dims(chosen.header)
                if dims:
                    w, h = dims[0], dims[1]
                    check_fits_size(path, w, h, int(np.prod(dims[2:])) if len(dims) > 2 else 1,
                                    abs(chosen.header.get("ZBITPIX", chosen.header.get("BITPIX", 32))) // 8)
                raw = np.array(chosen.data)
                header = chosen.header.copy()
                graph = _fits_graph(hdul)
        except ImageFileError:
            raise
        except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
            if _fits_truncated(path):
                raise ImageFileError(f"{path}: the FITS file is truncated (shorter than its header "
                                     f"says): copy or download it again") from None
            raise ImageFileError(f"{path}: not a readable FITS file ({exc})") from None
    for w in caught:
        text = str(w.message)
        if "truncated" in text.lower():
            raise ImageFileError(f"{path}: the FITS file is truncated ({text})")
    if raw is None or raw.ndim < 2:
        raise ImageFileError(f"{path}: HDU holds no image data")
    if raw.ndim == 3 and raw.shape[0] not in (1, 3) and raw.shape[-1] in (1, 3):
        raw = np.moveaxis(raw, -1, 0)
    data, meta = _to_float(raw, path)
    if graph:
        meta["graph"] = graph
    for key in ("BZERO", "BSCALE"):
        header.remove(key, ignore_missing=True)
    return _to_chw(data, path, False), header, meta


def _image_dims(header) -> list[int]:
    """NAXIS1, NAXIS2, ... of an image HDU (ZNAXISn for a tile-compressed one); [] if not 2-D or more."""
    prefix = "ZNAXIS" if "ZNAXIS" in header else "NAXIS"
    n = int(header.get(prefix, 0) or 0)
    dims = [int(header.get(f"{prefix}{i}", 0) or 0) for i in range(1, n + 1)]
    return dims if n >= 2 and all(d > 0 for d in dims) else []


def _fits_truncated(path: Path) -> bool:
    """Whether the primary HDU's data would end past the end of the file."""
    try:
        header = fits.getheader(path)
    except Exception:
        return False
    naxes = [header.get(f"NAXIS{i}", 0) for i in range(1, header.get("NAXIS", 0) + 1)]
    data_bytes = abs(header.get("BITPIX", 8)) // 8 * int(np.prod(naxes)) if naxes else 0
    header_bytes = -(-len(header.tostring()) // 2880) * 2880
    return path.stat().st_size < header_bytes + data_bytes


def _fits_graph(hdul) -> str | None:
    for h in hdul:
        if h.name == PROVENANCE_EXT:
            try:
                return bytes(h.data).decode("utf-8")
            except Exception:
                return None
    return None


def read_xisf(path: Path, index: int = 0) -> tuple[np.ndarray, fits.Header, dict]:
    """XISF: (data (C, H, W) float32, header from its FITS keywords, meta)."""
    from xisf import XISF

    try:
        x = XISF(str(path))
        metas = x.get_images_metadata()
        if index < 0:
            index = 0
        if index >= len(metas):
            raise ImageFileError(f"{path}: has {len(metas)} images, no image {index}")
        raw = x.read_image(index)
    except ImageFileError:
        raise
    except Exception as exc:
        raise ImageFileError(f"{path}: not a readable XISF file ({exc})") from None
    m = metas[index]
    header = fits.Header()
    for kw, values in m.get("FITSKeywords", {}).items():
        for v in values:
            try:
                if kw in ("HISTORY", "COMMENT"):
                    header.add_history(v["value"]) if kw == "HISTORY" else header.add_comment(v["value"])
                else:
                    header.append((kw, _fits_value(v["value"]), v.get("comment", "")))
            except (ValueError, KeyError):
                continue  # a keyword FITS cannot hold (XISF allows more) is skipped
    data, meta = _to_float(raw, path)
    prop = m.get("XISFProperties", {}).get(PROVENANCE_KEY)
    if prop:
        meta["graph"] = prop.get("value")
    return _to_chw(data, path, True), header, meta


def _fits_value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    t = text.strip()
    if t.startswith("'") and t.endswith("'") and len(t) >= 2:
        return t[1:-1].rstrip()
    if t in ("T", "F"):
        return t == "T"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def _decode_sidecar(text: str | None) -> tuple[fits.Header, str | None]:
    """Our JSON description (TIFF) or text chunk (PNG): the FITS header and the graph."""
    if not text:
        return fits.Header(), None
    try:
        d = json.loads(text)
        header = fits.Header.fromstring(d.get("fits_header", ""), sep="\n")
        return header, d.get("graph")
    except (ValueError, TypeError, AttributeError):
        return fits.Header(), None


def read_tiff(path: Path, index: int = 0) -> tuple[np.ndarray, fits.Header, dict]:
    """TIFF: (data (C, H, W) float32 in FITS row order, header, meta)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[max(index, 0)]
            raw = page.asarray()
            desc = page.description
            planar = page.planarconfig == 2 if hasattr(page, "planarconfig") else False
    except Exception as exc:
        raise ImageFileError(f"{path}: not a readable TIFF file ({exc})") from None
    header, graph = _decode_sidecar(desc if desc.startswith("{") else None)
    data, meta = _to_float(raw, path)
    if graph:
        meta["graph"] = graph
    chw = _to_chw(data, path, channels_last=not planar)
    return np.ascontiguousarray(chw[:, ::-1]), header, meta


def read_png_jpeg(path: Path) -> tuple[np.ndarray, fits.Header, dict]:
    """PNG (8/16-bit) or JPEG: (data (C, H, W) float32 in FITS row order, header, meta)."""
    from PIL import Image as PILImage

    fmt = format_of(path)
    try:
        with PILImage.open(path) as im:
            text = dict(getattr(im, "text", {}) or {})
            im.load()
            mode = im.mode
            if fmt == "png" and mode in ("I;16", "I;16B", "I", "RGB", "RGBA", "LA", "L", "P"):
                raw = _png_pixels(path, im)
            else:
                raw = np.asarray(im)
    except ImageFileError:
        raise
    except Exception as exc:
        raise ImageFileError(f"{path}: not a readable {fmt.upper()} file ({exc})") from None
    header, graph = _decode_sidecar(text.get(PROVENANCE_KEY))
    data, meta = _to_float(raw, path)
    if graph:
        meta["graph"] = graph
    chw = _to_chw(data, path, channels_last=True)
    return np.ascontiguousarray(chw[:, ::-1]), header, meta


def _png_pixels(path: Path, im) -> np.ndarray:
    """PNG pixels at their full depth (Pillow reduces 16-bit RGB to 8 bits; imagecodecs does not)."""
    import imagecodecs

    if im.mode == "P":  # a palette: imagecodecs gives the indices, Pillow the colours
        return np.asarray(im.convert("RGB"))
    return imagecodecs.png_decode(path.read_bytes())


def read_image(path: str | os.PathLike, index: int = -1, nan_policy: str = "error") -> Image:
    """Read any supported file into an :class:`Image` (see the module doc for conventions)."""
    p = Path(path)
    _check_readable(p)
    fmt = format_of(p)
    if fmt == "fits":
        data, header, meta = read_fits(p, index)
    elif fmt == "xisf":
        data, header, meta = read_xisf(p, index)
    elif fmt == "tiff":
        data, header, meta = read_tiff(p, index)
    else:
        data, header, meta = read_png_jpeg(p)
    if data.shape[1] < 1 or data.shape[2] < 1:
        raise ImageFileError(f"{p}: the image is empty ({data.shape[2]}x{data.shape[1]})")
    bad = ~np.isfinite(data)
    nbad = int(bad.sum())
    if nbad == bad.size:
        raise ImageFileError(f"{p}: every pixel ({nbad}) is NaN or infinite: the file holds no image data; "
                             f"check the file (nan_policy cannot replace a whole image)")
    if nbad:
        if nan_policy == "error":
            raise ImageFileError(f"{p}: {nbad} pixel(s) are NaN or infinite; set nan_policy to "
                                 f"'zero' or 'median' to replace them")
        data = np.array(data, dtype=np.float32)
        if nan_policy == "zero":
            data[bad] = 0.0
        else:
            for c in range(data.shape[0]):
                ok = np.isfinite(data[c])
                data[c][~ok] = np.median(data[c][ok]) if ok.any() else 0.0
        meta["replaced_nonfinite"] = nbad
    meta.update({"source": str(p), "format": fmt})
    return Image(data, header, p.stem.split(".")[0], meta)


# ---------------------------------------------------------------------------- writers
def _quantise(data: np.ndarray, bit_depth: str) -> np.ndarray:
    if bit_depth == "float32":
        return data.astype(np.float32, copy=False)
    top = 65535 if bit_depth == "uint16" else 255
    q = np.rint(np.clip(data, 0.0, 1.0) * top)
    return q.astype(np.uint16 if bit_depth == "uint16" else np.uint8)


def _sidecar(image: Image, graph_json: str | None) -> str:
    return json.dumps({"software": _software(), "fits_header": image.header.tostring(sep="\n"),
                       "graph": graph_json})


def _software() -> str:
    from ..version import __version__
    return f"msgr-nodes {__version__}"


def write_fits(tmp: Path, image: Image, bit_depth: str, graph_json: str | None, compress: bool) -> None:
    """Write FITS (tile-compressed when ``compress``) with the graph in a MSGRGRAF extension."""
    arr = _quantise(image.data, bit_depth)
    arr = arr[0] if arr.shape[0] == 1 else arr
    header = image.header.copy()
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO", "BSCALE",
                "PCOUNT", "GCOUNT", "XTENSION"):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["MSGRVER"] = (_software(), "software that wrote this file")
    hdus = [fits.PrimaryHDU(arr, header=header)]  # astropy stores uint16 as int16 + BZERO 32768
    if compress:
        # floats: lossless GZIP_2 without quantisation (astropy quantises floats by default)
        lossless = {"compression_type": "GZIP_2", "quantize_level": 0.0} if bit_depth == "float32" else {
            "compression_type": "RICE_1"}
        hdus = [fits.PrimaryHDU(), fits.CompImageHDU(arr, header=header, **lossless)]
    if graph_json:
        blob = np.frombuffer(graph_json.encode("utf-8"), dtype=np.uint8)
        ext = fits.ImageHDU(blob, name=PROVENANCE_EXT)
        ext.header["COMMENT"] = "UTF-8 JSON of the msgr-nodes graph that produced the primary image"
        hdus.append(ext)
    with open(tmp, "wb") as fh:
        if compress or arr.dtype != np.float32:
            fits.HDUList(hdus).writeto(fh, output_verify="silentfix")
        else:
            for hdu in hdus:
                _stream_hdu(fh, hdu)


# samples per chunk when streaming an HDU's data (16 MB of float32)
STREAM_CHUNK = 4 * 1024 * 1024


def _stream_hdu(fh, hdu) -> None:
    """Write one uncompressed image HDU (header, then its data as big-endian chunks, each padded to
    FITS blocks). astropy swaps a writable array in place while writing and copies a read-only one
    whole; images from the cache are read-only, so each Save of a 6000x4000 RGB image held a second
    288 MB copy (two Saves at once: the pipeline's peak). Chunks keep that to 16 MB."""
    hdu.verify("silentfix")
    fh.write(hdu.header.tostring().encode("ascii"))
    data = hdu.data
    if data is None:
        return
    flat = np.ascontiguousarray(data).reshape(-1)
    big = flat.dtype.newbyteorder(">")
    for start in range(0, flat.size, STREAM_CHUNK):
        fh.write(flat[start:start + STREAM_CHUNK].astype(big).tobytes())
    fh.write(b"\0" * (-flat.nbytes % 2880))


def write_xisf(tmp: Path, image: Image, bit_depth: str, graph_json: str | None) -> None:
    """Write XISF with the header as FITS keywords and the graph as a property."""
    from xisf import XISF

    arr = np.ascontiguousarray(np.moveaxis(_quantise(image.data, bit_depth), 0, -1))
    keywords: dict[str, list] = {}
    for card in image.header.cards:
        if card.keyword in ("", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND"):
            continue
        value = card.value
        text = ("T" if value else "F") if isinstance(value, bool) else (
            f"'{value}'" if isinstance(value, str) else str(value))
        keywords.setdefault(card.keyword, []).append({"value": text, "comment": card.comment})
    props = {}
    if graph_json:
        props[PROVENANCE_KEY] = {"id": PROVENANCE_KEY, "type": "String", "value": graph_json}
    XISF.write(str(tmp), arr, creator_app=_software(),
               image_metadata={"FITSKeywords": keywords, "XISFProperties": props}, codec=None)


def write_tiff(tmp: Path, image: Image, bit_depth: str, graph_json: str | None) -> None:
    """Write TIFF (flipped to top-down rows) with header and graph in ImageDescription."""
    import tifffile

    arr = _quantise(image.data, bit_depth)[:, ::-1]
    rgb = arr.shape[0] == 3
    arr = np.ascontiguousarray(np.moveaxis(arr, 0, -1) if rgb else arr[0])
    tifffile.imwrite(tmp, arr, photometric="rgb" if rgb else "minisblack",
                     description=_sidecar(image, graph_json), metadata=None, software=_software())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_png_jpeg(tmp: Path, image: Image, fmt: str, bit_depth: str, graph_json: str | None) -> None:
    """Write PNG (with an iTXt chunk holding header and graph) or JPEG."""
    arr = _quantise(image.data, bit_depth)[:, ::-1]
    arr = np.ascontiguousarray(np.moveaxis(arr, 0, -1) if arr.shape[0] == 3 else arr[0])
    if fmt == "jpeg":
        from PIL import Image as PILImage

        PILImage.fromarray(arr).save(tmp, format="JPEG", quality=95,
                                     comment=f"{_software()}".encode())
        return
    import imagecodecs

    png = imagecodecs.png_encode(arr, level=6)
    text = _sidecar(image, graph_json).encode("utf-8")
    # iTXt: keyword, NUL, compression flag 1 (zlib), method 0, empty language and translated keyword
    itxt = PROVENANCE_KEY.encode("latin-1") + b"\x00\x01\x00\x00\x00" + zlib.compress(text, 6)
    end = png.rfind(b"IEND") - 4
    with open(tmp, "wb") as fh:
        fh.write(png[:end] + _png_chunk(b"iTXt", itxt) + png[end:])


def write_image(path: str | os.PathLike, image: Image, fmt: str = "auto", bit_depth: str = "auto",
                overwrite: bool = False, graph_json: str | None = None) -> tuple[Path, str, str]:
    """Write ``image`` atomically; returns (path, format, bit depth).

    ``bit_depth`` ``auto`` keeps the source's depth where the format allows (float32
    otherwise; uint16 for PNG, uint8 for JPEG). Refuses to replace an existing file
    unless ``overwrite``.
    """
    p = Path(path)
    fmt = format_of(p, fmt)
    allowed = BIT_DEPTHS[fmt]
    if bit_depth == "auto":
        src = image.meta.get("source_dtype", "float32")
        bit_depth = src if src in allowed else allowed[0]
        if bit_depth != "float32" and "float32" in allowed and bool(np.any(image.data < 0)):
            # a signed image (a gradient model, a difference) would lose its negative half as integers
            bit_depth = "float32"
    if bit_depth not in allowed:
        raise ImageFileError(f"{p}: {fmt.upper()} cannot hold {bit_depth}; bit_depth must be one of "
                             f"{', '.join(allowed)}")
    if not p.parent.exists():
        raise ImageFileError(f"{p}: the folder {p.parent} does not exist")
    if p.exists() and not overwrite:
        raise ImageFileError(f"{p}: already exists; set overwrite=true to replace it, or choose another path")
    try:
        with atomic_path(p, overwrite=overwrite) as tmp:
            if fmt == "fits":
                write_fits(tmp, image, bit_depth, graph_json, compress=str(p).lower().endswith(".fz"))
            elif fmt == "xisf":
                write_xisf(tmp, image, bit_depth, graph_json)
            elif fmt == "tiff":
                write_tiff(tmp, image, bit_depth, graph_json)
            else:
                write_png_jpeg(tmp, image, fmt, bit_depth, graph_json)
    except FileExistsError:
        raise ImageFileError(f"{p}: already exists; set overwrite=true to replace it") from None
    except PermissionError:
        raise ImageFileError(f"{p}: permission denied (cannot write in {p.parent}): choose another "
                             f"folder") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise ImageFileError(f"{p}: no space left on the device (the image needs about "
                                 f"{image.data.nbytes / 1024**2:.0f} MB): free some space or choose another "
                                 f"folder; nothing was written") from None
        if exc.errno == errno.EROFS:
            raise ImageFileError(f"{p}: the file system is read-only: choose another folder") from None
        raise ImageFileError(f"{p}: cannot be written ({exc.strerror or exc}); nothing was written") from None
    return p, fmt, bit_depth


def read_graph_from_image(path: str | os.PathLike) -> str:
    """The graph JSON that msgr-nodes stored in an image it wrote."""
    img = read_image(path, nan_policy="zero")
    graph = img.meta.get("graph")
    if not graph:
        raise ImageFileError(f"{path}: holds no msgr-nodes graph (it was not written by msgr-nodes "
                             f"0.1 or later, or the provenance was stripped)")
    return graph
