"""DetailFit: the wide image matched to the narrow one on shared fine detail, self-checked; their difference."""
import functools
from dataclasses import dataclass, replace

import numpy as np

from msgr_nodes.api import Image, NodeError, NodeSpec, Param, Port
from msgr_nodes.ops.abe import ABEParams, BoxSamples, Surface, fit_mapped, gives_model
from msgr_nodes.ops.gradient import WideSky, match_wide, sampled_median
from msgr_nodes.ops.lens_falloff import (confirms_falloff, falloff_surface, flat_sky_surface, lens_flat,
                                         measures_falloff)
from msgr_nodes.ops.register import GridSurface, smooth_onto_reference
from msgr_nodes.ops.stars import match_channels


def difference_blur(narrow: Image, wide: Image) -> float:
    """Gaussian sigma (px) that brings the narrow image to the wide one's resolution, from the star
    FWHMs StarRemove measured on each (``psf_fwhm`` in their metadata); 0 where either is unknown or
    the wide image is the sharper."""
    fn, fw = float(narrow.meta.get("psf_fwhm", 0) or 0), float(wide.meta.get("psf_fwhm", 0) or 0)
    if fn <= 0 or fw <= fn:
        return 0.0
    return float(np.sqrt(fw * fw - fn * fn) / 2.3548)


def run(ctx, inputs, params):
    """Match the wide image to the narrow one, self-checked, and give their difference."""
    n, w = inputs["narrow"], inputs["wide"]
    if n.data.shape[1:] != w.data.shape[1:]:
        raise NodeError(f"narrow is {n.describe()} but wide is {w.describe()}: register the wide image first")
    wide = match_channels(w.data, n.channels)
    if n.channels != w.channels:
        ctx.warn("the wide image's luminance is matched to the mono narrow image" if n.channels == 1 else
                 "the mono wide image is matched to each channel of the RGB narrow image")
    difference = np.empty_like(n.data)
    fitted = np.empty_like(n.data)
    infos = []
    stars = wide_stars = None
    for port in ("narrow_mask", "wide_mask"):
        m = inputs.get(port)
        if m is None:
            continue
        if m.data.shape[1:] != n.data.shape[1:]:
            raise NodeError(f"{port} is {m.describe()} but narrow is {n.describe()}: give the star mask of the "
                            f"image on this grid (StarRemove's mask output)")
        mask = m.data[0] > 0.5
        if port == "wide_mask":
            wide_stars = mask
        stars = mask if stars is None else stars | mask
    if inputs.get("transform") is not None and inputs.get("wide_background") is None:
        ctx.warn("the transform is used only with wide_background (the wide image's ABE model): not used")
    full = inputs.get("narrow_stars")
    if full is not None and full.data.shape != n.data.shape:
        raise NodeError(f"narrow_stars is {full.describe()} but narrow is {n.describe()}: give the image StarRemove "
                        f"took the narrow image's stars from")
    background = _background_on_narrow(inputs, n)
    skies = _wide_skies(background, n, params["linearize"])
    lenses = _lens_flats(background, params["linearize"])
    if lenses:
        # the wide image flat-fielded by the lens's falloff, its sky fitted again on ABE's boxes so divided
        wide = wide.copy()  # the input stays as it was
        for c, lens in enumerate(lenses):
            if lens is not None:
                wide[c] = lens.wide(wide[c])
                if skies:
                    skies[c] = lens.wide_sky
    blur = difference_blur(n, w)
    wide_beta = float(w.meta.get("psf_beta", 0) or 0) if params["star_wings"] == "measured" else 0.0

    def channel(c):
        return match_wide(n.data[c], wide[c], detail_sigma=params["detail_sigma"],
                          slope_tolerance=params["slope_tolerance"], detail_threshold=params["detail_threshold"],
                          fallback_threshold=params["fallback_threshold"], slope=params["slope"],
                          floor_degree=params["floor_degree"], floor_unbalance=params["floor_unbalance"],
                          floor_passes=params["floor_passes"], linearize=params["linearize"], star_masks=stars,
                          wide_sky=skies[c] if skies else None, difference_blur=blur,
                          narrow_stars=None if full is None else full.data[c],
                          star_beta=wide_beta, wide_star_mask=wide_stars)

    for c, r in enumerate(ctx.map(channel, range(n.channels))):
        difference[c], fitted[c] = r.difference, r.fitted
        if lenses and lenses[c] is not None:
            r.info["lens_falloff"] = lenses[c].info
            r.info["check"] += lenses[c].note
        if params["offset"] == "none" and r.info.get("b", 0) > 0:
            # mosaics: the panel's own pedestal stays in the difference, so that the model removes it
            # and every panel corrected against one wide image sits on b x wide
            difference[c] += np.float32(r.info["a"])
            fitted[c] -= np.float32(r.info["a"])
        infos.append(r.info)
        ctx.progress((c + 1) / n.channels, f"channel {c + 1}: b = {r.info['b']:.4f}, {r.info['check']}")
        if r.info["check"] != "passed":
            ctx.warn(f"channel {c + 1}: {r.info['check']}")
    ctx.metadata["channels"] = infos
    header = n.header.copy()
    verdicts = ["passed" if i["check"].startswith("passed") else i["check"].split(":")[0] for i in infos]
    header["MSGRCHK"] = (", ".join(dict.fromkeys(verdicts))[:40], "MSGR self-check; see HISTORY")
    # the wide image's own check, where another DetailFit corrected it (the cascade: the wide image
    # matched to an ultra-wide one), is kept beside this one's as "MSGR wide check"
    if "MSGRCHK" in w.header:
        header["MSGRWCHK"] = (w.header["MSGRCHK"], "self-check of the wide image's correction")
        for h in w.header.get("HISTORY", []):
            if str(h).startswith("MSGR check"):
                header.add_history(f"MSGR wide {str(h)[len('MSGR '):]}")
    for c, i in enumerate(infos):
        # every line starts with MSGR, so that nodes downstream carry all of them to the saved file
        text = i["check"]
        for k, start in enumerate(range(0, len(text), 56)):
            header.add_history(f"MSGR check ch{c + 1}{':' if k == 0 else '+'} {text[start:start + 56]}")
    return {"difference": Image(difference, header, "Difference", dict(n.meta)),
            "fitted": w.derive(fitted, name=f"{w.name}_fitted")}


def _background_on_narrow(inputs, n):
    """The wide image's ABE model (wide_background), its planes matched to the narrow image's
    channels, and the transform that brings it onto the narrow grid (None where it is there
    already), as (background image, planes, transform); None without a wide_background."""
    bg, transform = inputs.get("wide_background"), inputs.get("transform")
    if bg is None:
        return None
    model = match_channels(bg.data, n.channels)
    if bg.data.shape[1:] == n.data.shape[1:]:
        transform = None  # on the narrow grid already
    elif transform is None:
        raise NodeError(f"wide_background is {bg.describe()}, not on the narrow grid ({n.describe()}): connect "
                        f"Register's transform too")
    elif tuple(transform.get("reference_shape", ())) != n.data.shape[1:]:
        raise NodeError(f"the transform maps from a {'x'.join(map(str, transform.get('reference_shape', ())[::-1]))} "
                        f"frame, not the narrow image's ({n.describe()}): give the transform of the Register that "
                        f"made the wide input")
    return bg, model, transform


def _abe_boxes(background, n_channels):
    """Per channel, ABE's sample boxes and settings (with the channel's degree) from the model's
    metadata, and the falloff ABE's boxes preferred with vignetting off (0: none), as (BoxSamples,
    ABEParams, float) triples; None where the model carries none usable (a model from elsewhere, a
    colour model for a mono narrow image, whose boxes are per colour, another version's)."""
    bg = background[0]
    boxes = bg.meta.get("abe_boxes")
    if boxes is None or bg.channels != n_channels:
        return None
    try:
        settings = ABEParams(**boxes["settings"])
        return [(BoxSamples.from_meta(chan), replace(settings, degree=int(chan["degree"])),
                 float(chan.get("falloff_seen", 0.0))) for chan in boxes["channels"]]
    except (TypeError, ValueError, KeyError):
        return None


def _wide_skies(background, n, linearize):
    """Per channel, the sky the wide image's ABE subtracted, on the narrow frame, as a
    :class:`~msgr_nodes.ops.gradient.WideSky`: the model (a
    :class:`~msgr_nodes.ops.register.GridSurface`), the level it left the sky at (ABE's normalize:
    the model's median over its frame) and, where the model carries ABE's sample boxes, how to fit
    them again through a tone curve; or None without a wide_background or with linearize off (the
    only step that uses it)."""
    if background is None or linearize == "off":
        return None
    _, model, transform = background
    # a transform of another image than this model's is named by smooth_onto_reference
    # without ABE's boxes (a model from elsewhere, a colour model for a mono narrow image, whose boxes
    # are per colour, or another version's boxes) the sky is taken out through the curve
    refits = [None] * len(model)
    boxes = _abe_boxes(background, n.channels)
    if boxes is not None and len(boxes) == len(model):
        refits = [functools.partial(_refit_sky, samples, settings, plane, transform)
                  for plane, (samples, settings, _) in zip(model, boxes)]
    return [WideSky(smooth_onto_reference(plane, transform), sampled_median(plane), refit)
            for plane, refit in zip(model, refits)]


@dataclass
class _Falloff:
    """The wide image flat-fielded by a lens's falloff, its sky taken out as flats would have left it.
    On the narrow frame, as smooth surfaces (evaluated one channel at a time: a 24 Mpx frame's planes
    are 96 MB each): ``flat`` the falloff, ``model`` ABE's plain model that the wide input had taken
    out down to ``model_level``, ``sky`` the sky fitted under the flat, left at ``sky_level``.
    ``wide_sky`` is that sky as a WideSky (None with linearize off); ``info`` and ``note`` what was
    measured, for the check."""

    flat: GridSurface
    model: GridSurface
    model_level: float
    sky: GridSurface
    sky_level: float
    wide_sky: WideSky | None
    info: dict
    note: str

    def wide(self, plane):
        """The registered wide plane (H, W) flat-fielded, with the flat's sky taken out; no data (0)
        stays 0."""
        # ABE's normalize kept the sky's level, so the wide input is data - model + model_level;
        # flat-fielded: (input + model - model_level) / flat - sky + sky_level
        out = self.model.evaluate()
        out += plane
        out -= np.float32(self.model_level)
        out /= self.flat.evaluate()
        out -= self.sky.evaluate()
        out += np.float32(self.sky_level)
        return np.where(plane != 0, out, plane).astype(np.float32, copy=False)


def _lens_flats(background, linearize):
    """Per channel, where the stars Register matched show a wide lens's falloff (the transform's
    ``star_falloff``), the wide image flat-fielded by it (:class:`_Falloff`), else None; None where
    no channel has one. The falloff is the one the wide image's ABE (vignetting off) would have kept on
    its boxes (``falloff_seen`` in their metadata) where the stars confirm it, or the stars' own where
    they measure it clearly (:func:`~msgr_nodes.ops.lens_falloff.measures_falloff`): a nebula over
    most of the wide frame hides a lens from ABE's boxes."""
    if background is None or background[2] is None:
        return None
    _, model, transform = background
    stars = transform.get("stats", {}).get("star_falloff")
    boxes = _abe_boxes(background, len(model))
    if not stars or boxes is None or len(boxes) != len(model):
        return None
    out = []
    for plane, (samples, settings, seen) in zip(model, boxes):
        lens = None
        confirmed = bool(seen) and confirms_falloff(stars, seen)
        if not settings.vignetting and (confirmed or measures_falloff(stars)) and \
                gives_model(samples, settings, plane):
            lens = _flat_fielded(plane, samples, settings, transform, linearize, stars, confirmed)
        out.append(lens)
    return out if any(o is not None for o in out) else None


def _flat_fielded(plane, samples, settings, transform, linearize, stars, confirmed):
    """The wide image divided by the lens's falloff and ABE's fit made again on its boxes so divided, as
    a :class:`_Falloff` for the narrow frame: the falloff ABE's boxes keep with vignetting on where
    ``confirmed``, the stars' otherwise; None where the boxes keep none or allow no fit."""
    if confirmed:
        fitted = falloff_surface(samples, settings, plane.shape)
        if fitted is None:
            return None
        k, sky = fitted.falloff, Surface("polynomial", plane.shape, fitted.coef, fitted.degree)
    else:
        k, sky = stars["k"], flat_sky_surface(samples, settings, plane.shape, stars["k"])
        if sky is None:
            return None
    flat = lens_flat(plane.shape, k).evaluate()
    sky_plane = sky.evaluate()
    sky_grid, sky_level = smooth_onto_reference(sky_plane, transform), sampled_median(sky_plane)
    # through a tone curve, that sky is not fitted again: the flat divided linear values
    wide_sky = WideSky(sky_grid, sky_level) if linearize != "off" else None
    info = {"k": float(k), "stars_k": stars["k"], "stars_error": stars["error"], "stars": stars["stars"],
            "from": "abe" if confirmed else "stars"}
    measured = (f"{100 * stars['k']:.0f} +- {100 * stars['error']:.0f} % from {stars['stars']} stars' fluxes against "
                f"the narrow image's")
    found = (f"its ABE found a falloff of {100 * k:.0f} % and its stars confirm it ({measured})" if confirmed else
             f"its stars show a falloff of {measured} (its ABE's sample boxes, amid nebula, could not tell it)")
    note = (f"; the wide image dims towards its corners as through a lens without flats: {found}, so it was "
            f"divided by that falloff and its sky taken out as the flats would have left it")
    return _Falloff(smooth_onto_reference(flat, transform), smooth_onto_reference(plane, transform),
                    sampled_median(plane), sky_grid, sky_level, wide_sky, info, note)


def _refit_sky(samples, settings, model, transform, curve):
    """ABE's fit again on its boxes with their values put through ``curve``, on the narrow frame, and
    its level; None where the boxes no longer allow a fit or are not ``model``'s (the wide frame's
    (h, w) plane) own: a model changed after ABE (PixelMath, Register) keeps the metadata of the one
    it came from."""
    surface = fit_mapped(samples, model.shape, settings, curve) if gives_model(samples, settings, model) else None
    if surface is None:
        return None
    plane = surface.evaluate()
    return smooth_onto_reference(plane, transform), sampled_median(plane)


SPEC = NodeSpec(
    type="DetailFit", version=23, category="Multiscale",
    help="Match the registered wide image to the narrow one, a + b wide, with the slope b measured on fine "
         "detail both images share (band-passes from detail_sigma/2 up; gradients do not bias them, unlike a "
         "LinearFit on large scales), and output the difference narrow - (a + b wide): the gradient plus "
         "noise. Local defects of either image (satellite trails, blooming, hot pixels, stacking edges) are "
         "left out of the fit and filled in the difference, and so are the regions where the wide image "
         "holds structure the narrow one lacks (a reflection, a halo), where it has no data (outside its "
         "field after registration) and, given the star masks, where either image's stars were removed (each "
         "image's fill guesses the sky under its own stars): the model is interpolated across them. A stretched (non-linear) wide image, "
         "whose detail is compressed where it is bright, is found and linearized by a tone curve fitted on the "
         "shared detail (linearize), with the sky the wide image's ABE took out in stretched values put back "
         "before the curve and taken out again, ABE's fit redone on its sample boxes made linear "
         "(wide_background and transform). A wide lens's vignetting is "
         "measured from the slope tile by tile and taken out multiplicatively; where the stars Register matched "
         "show a lens's falloff (their wide fluxes against the narrow ones fall towards the wide frame's "
         "corners, which a bright nebula in the frame's middle cannot fake), clearly on their own or confirming "
         "the falloff the wide image's ABE (vignetting off) found its sample boxes prefer, the wide image is "
         "divided by that falloff, as a flat would, and ABE's boxes so divided are fitted again for its sky. "
         "A softer wide image is "
         "compared at matched "
         "resolution (the narrow one blurred to it), and the difference is taken at the softer image's "
         "resolution, from the star FWHMs StarRemove measured on both; given the narrow image with its stars "
         "(narrow_stars), the difference is taken on it, so that the faint stars the wide image's StarRemove "
         "cannot find (a soft image's detection limit is shallower) cancel instead of being taken for sky, and "
         "the slope is measured on it too, at the wide image's resolution and outside the star masks (against "
         "the starless image those stars were detail of the wide image alone and pulled the slope low); "
         "the narrow image's stars are blurred to the wide stars' profile, wings included (star_wings; the "
         "measured wings are checked around the brightest stars). "
         "The fit checks itself: if the wide image explains the "
         "narrow one's detail with no two detail scales agreeing on the slope, the slope of the band that "
         "explains it best is used (the plain additive model; the large-scale slope where none explains it "
         "well), and if it "
         "explains none of it its detail is not used: where it still sees the same large-scale sky, the "
         "difference is then a polynomial background of the narrow image fitted jointly with the wide image's "
         "large scales (which take the nebula; through a cubic tone curve where that explains the narrow "
         "image's blocks clearly better than a line, as for two photographs stretched differently), else a "
         "background model "
         "of the narrow image alone (ABE, its degree chosen by cross-validation, higher than 2 only where the "
         "refused wide image sees the same large-scale sky but not what that degree adds; or given as "
         "floor_degree), or zero where even that finds no gradient or where that blind model follows the "
         "large-scale sky the refused wide image shows (it would take nebula). Each decision is a warning and a header card (MSGRCHK) that travels to the "
         "saved files; where the wide image was itself corrected by a DetailFit (msgr_cascade), that check "
         "travels too (MSGRWCHK, and HISTORY lines MSGR wide check).",
    run=run,
    inputs=(Port(name="narrow", type="image", help="the starless narrow image"),
            Port(name="wide", type="image", help="the starless wide image registered onto the narrow grid"),
            Port(name="narrow_mask", type="mask", optional=True,
                 help="the narrow image's star mask (StarRemove's mask); the difference is "
                      "interpolated across it"),
            Port(name="wide_mask", type="mask", optional=True,
                 help="the registered wide image's star mask, likewise"),
            Port(name="narrow_stars", type="image", optional=True,
                 help="the narrow image with its stars (StarRemove's input): the difference and the slope are "
                      "taken on it, so that the faint stars the wide image's StarRemove left in cancel instead of "
                      "being taken for sky or pulling the slope (the star masks are still left out)"),
            Port(name="wide_background", type="image", optional=True,
                 help="the wide image's background model from its ABE (subtract): where the wide image is "
                      "linearized, that sky is put back before the tone curve and taken out again, fitted anew "
                      "on ABE's sample boxes made linear (a model from elsewhere: through the curve); where "
                      "the stars show a lens's falloff, fitted again on ABE's boxes divided by it"),
            Port(name="transform", type="transform", optional=True,
                 help="Register's transform, to bring wide_background from the wide image's grid to the "
                      "narrow one")),
    outputs=(Port(name="difference", type="image", help="narrow - (a + b wide), median 0; the narrow image's own background "
                                               "model when the check refuses the wide image"),
             Port(name="fitted", type="image", help="the wide image matched to the narrow one: a + b wide")),
    params=(
        Param(name="detail_sigma", kind="float", default=8.0, help="scale of the shared detail band (sigma/2 to 4 sigma); 0.5x to 8x "
              "are tried, the smallest stable one is used", min=1.0, max=128.0, unit="px"),
        Param(name="slope_tolerance", kind="float", default=0.05, help="largest relative difference of the slopes measured at two "
              "neighbouring scales for the slope to be trusted", min=0.0, max=10.0),
        Param(name="detail_threshold", kind="float", default=0.5, help="the difference must keep less than this share of the narrow "
              "image's fine detail, else the wide image does not explain it and the fit falls back",
              min=0.0, max=10.0),
        Param(name="fallback_threshold", kind="float", default=0.5, help="above this share of unexplained detail nothing is subtracted "
              "at the large-scale slope (below it, where no detail scale is stable, the plain additive model is used)",
              min=0.0, max=10.0),
        Param(name="slope", kind="float", default=0.0, min=0.0, max=1000.0, advanced=True,
              help="0: measure b; > 0: use this b once the checks accept the wide image (mosaics: one slope for "
              "every panel, e.g. the median of their measured ones, which msgr-nodes batch reports)"),
        Param(name="offset", kind="choice", default="fit", choices=("fit", "none"),
              help="fit: a is the median of narrow - b wide (the corrected image keeps its own level); none: "
              "a = 0, for mosaics with gradient_model.zero_median=false: every panel corrected against one wide "
              "image then sits on the same background, b x wide", advanced=True),
        Param(name="floor_degree", kind="int", default=0, min=0, max=6, advanced=True,
              help="where the wide image is refused, the degree of the narrow image's own ABE model: 0 = chosen "
              "blind among 0-2 (higher degrees follow nebula as readily as gradients), or 3-6 where the refused "
              "wide image still sees the same large-scale sky but not what the higher degree adds; 3-6 for a "
              "frame you know to be mostly empty sky (a galaxy field)"),
        Param(name="linearize", kind="choice", default="auto", choices=("auto", "off"), advanced=True,
              help="auto: a wide image that is not linear (stretched, or a camera JPEG's gamma) is found from "
              "its detail and linearized by a fitted tone curve, with a warning; off: the wide image is taken "
              "as linear"),
        Param(name="floor_unbalance", kind="float", default=1.8, min=0.1, max=20.0, advanced=True,
              help="that model's ABE unbalance: how far below its surface a sample box may lie, in deviation "
              "sigma (1.8: ABE's default; 8.0, as msgr_cascade's wide_fit, keeps the dark sky between a nebula "
              "that fills the frame)"),
        Param(name="floor_passes", kind="int", default=1, min=1, max=2, advanced=True,
              help="that model's ABE passes (2: fitted again on the boxes with the first model taken out, as the "
              "stock graphs fit their wide image)"),
        Param(name="star_wings", kind="choice", default="measured", choices=("measured", "gaussian"), advanced=True,
              help="measured: with narrow_stars, the narrow image's stars are blurred to the wide image's star "
              "profile (a Moffat of the beta StarRemove measured on the wide image's stars), so that their "
              "wings match, unless around the brightest stars another kernel (a Gaussian, or a Moffat of beta "
              "1.5-5) leaves the difference much flatter: the measure is the stars' median profile, and "
              "where the sources are broad themselves it gives wings the wide image does not have; "
              "gaussian: by the Gaussian that matches the FWHMs, as the nebula is"),
    ),
)
