"""Mosaics: panels cut from one field (each with its own WCS and gradient) coadded with reproject."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from msgr_nodes.cli import main
from msgr_nodes.ops.mosaic import coadd


def field_wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 20.0]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cdelt = [-2.0 / 3600, 2.0 / 3600]
    return w


def sky(shape):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (0.2 + 0.05 * np.exp(-((xx - shape[1] * 0.4) ** 2 + (yy - shape[0] * 0.6) ** 2) / 3000.0)).astype(np.float32)


def panels(gradients=True):
    shape = (300, 400)
    truth, w = sky(shape), field_wcs(shape)
    out = []
    for k, (y0, x0) in enumerate([(0, 0), (0, 180), (130, 0), (130, 180)]):
        cut = truth[y0:y0 + 170, x0:x0 + 220].copy()
        if gradients:
            yy, xx = np.mgrid[0:cut.shape[0], 0:cut.shape[1]]
            cut = cut + 0.02 * (k + 1) * xx / cut.shape[1]
        out.append((cut[None], w[y0:y0 + 170, x0:x0 + 220]))
    return truth, w, out


def test_coadded_panels_give_the_field_back_with_overlaps_counted():
    truth, w, parts = panels(gradients=False)
    mosaic, wcs, footprint = coadd(parts)
    assert mosaic.shape[0] == 1 and footprint.max() == 4
    # the mosaic's centre pixel is where the field's centre pixel is on the sky
    ra, dec = w.wcs_pix2world([[200, 150]], 0)[0]
    x, y = wcs.wcs_world2pix([[ra, dec]], 0)[0]
    assert abs(mosaic[0, int(round(y)), int(round(x))] - truth[150, 200]) < 2e-3
    covered = footprint > 0
    assert np.abs(mosaic[0][covered] - np.median(truth)).max() < 0.06


def test_panels_of_different_channels_are_refused():
    _, _, parts = panels()
    parts[1] = (np.repeat(parts[1][0], 3, axis=0), parts[1][1])
    with pytest.raises(ValueError, match="a mosaic takes all mono or all RGB panels"):
        coadd(parts)


def test_the_mosaic_command_writes_one_file_and_refuses_a_panel_without_wcs(tmp_path, capsys):
    _, _, parts = panels()
    files = []
    for k, (data, w) in enumerate(parts):
        files.append(str(tmp_path / f"p{k}.fits"))
        fits.writeto(files[-1], data[0], w.to_header())
    assert main(["mosaic", *files, "-o", str(tmp_path / "m.fits")]) == 0
    with fits.open(tmp_path / "m.fits") as hdul:
        header, data = hdul[0].header, hdul[0].data
        assert header["MSGRMOS"] == 4 and WCS(header).has_celestial and data.shape[0] > 170
    fits.writeto(tmp_path / "nowcs.fits", parts[0][0][0])
    assert main(["mosaic", files[0], str(tmp_path / "nowcs.fits"), "-o", str(tmp_path / "m2.fits")]) == 1
    err = capsys.readouterr().err
    assert "nowcs.fits: has no celestial WCS (plate-solve it first)" in err and not (tmp_path / "m2.fits").exists()


def test_a_given_slope_replaces_the_measured_one_once_the_checks_accept_the_wide_image(small_pair):
    from msgr_nodes.io.formats import read_image
    from msgr_nodes.testing import run_node

    narrow = read_image(small_pair / "narrow.fits")
    wide = read_image(small_pair / "wide.fits")
    aligned = run_node("Register", {"reference": narrow, "target": wide})["image"]
    measured = run_node("DetailFit", {"narrow": narrow, "wide": aligned})
    b = measured.metadata["channels"][0]["b"]
    given = run_node("DetailFit", {"narrow": narrow, "wide": aligned}, {"slope": 1.1 * b, "offset": "none"})
    info = given.metadata["channels"][0]
    assert info["b"] == pytest.approx(1.1 * b) and info["b_measured"] == pytest.approx(b)
    assert "slope given" in info["check"] and info["check"].startswith("passed")
    # offset none: the difference keeps the pedestal a (the fit's median), so the model removes it
    diff = given["difference"].data[0]
    assert np.median(diff) == pytest.approx(info["a"], abs=1e-4) and abs(info["a"]) > 1e-4
