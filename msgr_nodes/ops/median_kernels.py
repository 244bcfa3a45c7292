"""Median filters on integer codes, in numba (compiled once per machine: cache=True).

Both kernels take a padded 2-D code array (uint32; the caller pads by the radius
with reflection) and write an unpadded output of codes. Because a median
commutes with any monotone map, running them on ranks or quantised codes and
mapping back gives exactly the median of the mapped values.

* :func:`huang_median` - Huang's sliding histogram, O(k) per pixel, any
  footprint given by per-row half-widths, any number of bins (a coarse count per
  256 bins lets the median skip empty ranges). A full 3x3 window needs no
  histogram: each column is sorted once and shared by its three windows.
* :func:`ph_median` - Perreault & Hebert's constant-time median for square
  windows: column histograms with a coarse and a fine level; the fine part of
  the window histogram is brought up to date lazily, one coarse bin at a time.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit, prange

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    HAVE_NUMBA = False

BLOCK = 256  # fine bins per coarse count in the Huang kernel

if HAVE_NUMBA:

    @njit(cache=True, nogil=True)
    def _huang_band(padded, hw, r, nbins, out, y0, y1):
        h_out, w_out = out.shape
        hist = np.zeros(nbins, np.int32)
        coarse = np.zeros((nbins + BLOCK - 1) // BLOCK, np.int32)
        count = 0
        for dy in range(2 * r + 1):
            count += 2 * hw[dy] + 1
        rank = count // 2
        for y in range(y0, y1):
            # window centred on (y, 0): padded rows y .. y + 2r, columns r - hw .. r + hw
            for dy in range(2 * r + 1):
                row = padded[y + dy]
                for xx in range(r - hw[dy], r + hw[dy] + 1):
                    v = row[xx]
                    hist[v] += 1
                    coarse[v // BLOCK] += 1
            # find the median from scratch
            m = 0
            lt = 0
            while lt + coarse[m // BLOCK] <= rank:
                lt += coarse[m // BLOCK]
                m += BLOCK
            while lt + hist[m] <= rank:
                lt += hist[m]
                m += 1
            out[y, 0] = m
            for x in range(1, w_out):
                for dy in range(2 * r + 1):
                    row = padded[y + dy]
                    v = row[x - 1 + r - hw[dy]]
                    hist[v] -= 1
                    coarse[v // BLOCK] -= 1
                    if v < m:
                        lt -= 1
                    v = row[x + r + hw[dy]]
                    hist[v] += 1
                    coarse[v // BLOCK] += 1
                    if v < m:
                        lt += 1
                while lt > rank:
                    m -= 1
                    if m % BLOCK == BLOCK - 1:
                        while m >= BLOCK and lt - coarse[m // BLOCK] > rank:
                            lt -= coarse[m // BLOCK]
                            m -= BLOCK
                    lt -= hist[m]
                while lt + hist[m] <= rank:
                    lt += hist[m]
                    m += 1
                    if m % BLOCK == 0:
                        while lt + coarse[m // BLOCK] <= rank:
                            lt += coarse[m // BLOCK]
                            m += BLOCK
                out[y, x] = m
            # empty the histogram by removing the last window: O(k^2), not O(nbins)
            for dy in range(2 * r + 1):
                row = padded[y + dy]
                x = w_out - 1
                for xx in range(x + r - hw[dy], x + r + hw[dy] + 1):
                    v = row[xx]
                    hist[v] -= 1
                    coarse[v // BLOCK] -= 1

    @njit(cache=True, parallel=True)
    def _median9(padded, out):
        # exact 3x3 median: each column's three values are sorted once (lo <= mid <= hi) and shared by
        # the three windows that hold it; a window's median is then the median of (the largest lo, the
        # median of the mids, the smallest hi). A 19-exchange network per pixel sorted every column
        # three times over, through a small array: 1.4-1.6 s on a 6000x4000 frame, this 0.02 s.
        h, w = out.shape
        for y in prange(h):
            lo = np.empty(w + 2, padded.dtype)
            mid = np.empty(w + 2, padded.dtype)
            hi = np.empty(w + 2, padded.dtype)
            for x in range(w + 2):
                a, b, c = padded[y, x], padded[y + 1, x], padded[y + 2, x]
                if a > b:
                    a, b = b, a
                if b > c:
                    b, c = c, b
                if a > b:
                    a, b = b, a
                lo[x], mid[x], hi[x] = a, b, c
            for x in range(w):
                low = max(max(lo[x], lo[x + 1]), lo[x + 2])
                high = min(min(hi[x], hi[x + 1]), hi[x + 2])
                a, b = mid[x], mid[x + 1]
                m = max(min(a, b), min(max(a, b), mid[x + 2]))
                out[y, x] = max(min(low, m), min(max(low, m), high))

    @njit(cache=True, parallel=True)
    def _huang_parallel(padded, hw, r, nbins, out, bands):
        for b in prange(bands.shape[0] - 1):
            _huang_band(padded, hw, r, nbins, out, bands[b], bands[b + 1])

    @njit(cache=True, nogil=True)
    def _ph_band(padded, r, nbins, fine_bits, out, y0, y1):
        h_out, w_out = out.shape
        wp = padded.shape[1]
        k = 2 * r + 1
        nf = 1 << fine_bits
        nc = nbins >> fine_bits
        col_c = np.zeros((wp, nc), np.uint16)
        col_f = np.zeros((wp, nbins), np.uint16)
        rank = (k * k) // 2
        # column histograms for rows y0 .. y0 + 2r (padded coordinates)
        for yy in range(y0, y0 + k):
            for j in range(wp):
                v = padded[yy, j]
                col_c[j, v >> fine_bits] += 1
                col_f[j, v] += 1
        kc = np.zeros(nc, np.int32)
        kf = np.zeros(nbins, np.int32)
        last = np.empty(nc, np.int64)
        for y in range(y0, y1):
            if y > y0:
                for j in range(wp):
                    v = padded[y - 1, j]
                    col_c[j, v >> fine_bits] -= 1
                    col_f[j, v] -= 1
                    v = padded[y + 2 * r, j]
                    col_c[j, v >> fine_bits] += 1
                    col_f[j, v] += 1
            kc[:] = 0
            for j in range(k):
                for c in range(nc):
                    kc[c] += col_c[j, c]
            last[:] = -(1 << 40)
            for x in range(w_out):
                if x > 0:
                    for c in range(nc):
                        kc[c] += np.int32(col_c[x + 2 * r, c]) - np.int32(col_c[x - 1, c])
                acc = 0
                c = 0
                while acc + kc[c] <= rank:
                    acc += kc[c]
                    c += 1
                base = c << fine_bits
                if x - last[c] > k:
                    for f in range(nf):
                        kf[base + f] = 0
                    for j in range(x, x + k):
                        for f in range(nf):
                            kf[base + f] += col_f[j, base + f]
                else:
                    for xx in range(last[c] + 1, x + 1):
                        for f in range(nf):
                            kf[base + f] += np.int32(col_f[xx + 2 * r, base + f]) - np.int32(col_f[xx - 1, base + f])
                last[c] = x
                f = 0
                while acc + kf[base + f] <= rank:
                    acc += kf[base + f]
                    f += 1
                out[y, x] = base + f

    @njit(cache=True, parallel=True)
    def _ph_parallel(padded, r, nbins, fine_bits, out, bands):
        for b in prange(bands.shape[0] - 1):
            _ph_band(padded, r, nbins, fine_bits, out, bands[b], bands[b + 1])


def _bands(height: int, n: int) -> np.ndarray:
    n = max(1, min(n, height))
    return np.linspace(0, height, n + 1).astype(np.int64)


def _threads() -> int:
    return numba.get_num_threads() if HAVE_NUMBA else 1


SHAPES = ("square", "circle")


def half_widths(radius: int, shape: str) -> np.ndarray:
    """Per-row half-widths of a footprint of the given radius: ``shape`` one of :data:`SHAPES`."""
    if shape not in SHAPES:
        raise ValueError(f"footprint shape {shape!r} is not one of {', '.join(SHAPES)}")
    dy = np.arange(-radius, radius + 1)
    if shape == "square":
        return np.full(dy.size, radius, np.int64)
    return np.floor(np.sqrt(np.maximum(radius * radius + radius - dy * dy, 0))).astype(np.int64)  # r + 0.5 disc


def pad_reflect(codes: np.ndarray, radius: int) -> np.ndarray:
    """Pad by ``radius`` mirroring with the edge repeated (scipy's ``reflect``, numpy's ``symmetric``)."""
    return np.pad(codes, radius, mode="symmetric")


def huang_median(codes: np.ndarray, radius: int, nbins: int, shape: str = "square") -> np.ndarray:
    """Median of integer codes (2-D, values < nbins) over a square or circular window; reflect borders."""
    if not HAVE_NUMBA:  # slow but exact fallback (scipy is O(k^2) per pixel: benchmarks/mmt.py compares them)
        from scipy import ndimage
        fp = footprint(radius, shape)
        return ndimage.median_filter(codes, footprint=fp, mode="reflect").astype(np.uint32)
    padded = pad_reflect(codes.astype(np.uint32, copy=False), radius)
    out = np.empty(codes.shape, np.uint32)
    if radius == 1 and np.all(half_widths(1, shape) == 1):  # a full 3x3: sorted columns, no histogram
        _median9(padded, out)
        return out
    _huang_parallel(padded, half_widths(radius, shape), radius, nbins, out, _bands(codes.shape[0], 4 * _threads()))
    return out


def ph_median(codes: np.ndarray, radius: int, bits: int) -> np.ndarray:
    """Constant-time square median of codes < 2**bits (bits <= 14); reflect borders."""
    if bits > 14:
        raise ValueError("ph_median takes at most 14-bit codes (column histograms grow as 2**bits)")
    if not HAVE_NUMBA:
        return huang_median(codes, radius, 1 << bits)
    padded = pad_reflect(codes.astype(np.uint16, copy=False), radius)
    out = np.empty(codes.shape, np.uint32)
    # about 128 coarse bins: measured fastest at 6000x4000 (11-bit codes: 1.1-1.9 s per layer with 4 fine
    # bits, 2.7-4.7 s with 6), because stale fine segments are rebuilt at k x 2^fine_bits cost
    fine_bits = max(3, min(bits - 7, bits // 2))
    _ph_parallel(padded, radius, 1 << bits, fine_bits, out, _bands(codes.shape[0], _threads()))
    return out


def footprint(radius: int, shape: str) -> np.ndarray:
    """The boolean footprint (2r+1, 2r+1) of a square or circular window (as scipy's footprint=)."""
    hw = half_widths(radius, shape)
    fp = np.zeros((2 * radius + 1, 2 * radius + 1), bool)
    for i, w in enumerate(hw):
        fp[i, radius - w: radius + w + 1] = True
    return fp

