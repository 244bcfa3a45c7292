"""Mosaics: corrected panels reprojected onto one celestial WCS and coadded (reproject's
``reproject_and_coadd``: the astropy ecosystem's tool for it)."""
from __future__ import annotations

import numpy as np
from astropy.wcs import WCS


def coadd(panels: list[tuple[np.ndarray, WCS]], match_background: bool = False,
          ) -> tuple[np.ndarray, WCS, np.ndarray]:
    """Reproject every panel onto one WCS that covers them all and average them.

    Parameters
    ----------
    panels : list of (data, wcs)
        Each panel's pixels, float32 (C, H, W) with C = 1 or 3 and the same C for all, and its
        celestial WCS (2-D).
    match_background : bool
        Let reproject offset each panel to its neighbours before coadding (reproject's own
        background matching; panels corrected against one wide image do not need it).

    Returns
    -------
    mosaic : ndarray
        float32 (C, H, W); pixels no panel covers are 0.
    wcs : WCS
        The mosaic's celestial WCS (north up, from ``find_optimal_celestial_wcs``).
    footprint : ndarray
        float32 (H, W): how many panels cover each pixel.
    """
    from reproject import reproject_interp
    from reproject.mosaicking import find_optimal_celestial_wcs, reproject_and_coadd

    if not panels:
        raise ValueError("a mosaic needs at least one panel")
    channels = {p[0].shape[0] for p in panels}
    if len(channels) != 1:
        raise ValueError(f"panels have {sorted(channels)} channels: a mosaic takes all mono or all RGB panels")
    wcs_out, shape = find_optimal_celestial_wcs([(p[0].shape[1:], p[1]) for p in panels])
    planes = []
    for c in range(channels.pop()):
        data, _ = reproject_and_coadd([(p[0][c].astype(np.float64), p[1]) for p in panels], wcs_out,
                                      shape_out=shape, reproject_function=reproject_interp,
                                      combine_function="mean", match_background=match_background)
        planes.append(np.nan_to_num(data, nan=0.0).astype(np.float32))
    # how many panels cover each pixel (reproject's footprint is a weight sum, not a count)
    footprint = np.zeros(shape, np.float32)
    for data, w in panels:
        _, foot = reproject_interp((np.ones(data.shape[1:]), w), wcs_out, shape_out=shape)
        footprint += np.nan_to_num(foot).astype(np.float32) > 0.5
    return np.stack(planes), wcs_out, footprint
