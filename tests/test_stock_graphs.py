from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from msgr_nodes.cli import main
from msgr_nodes.errors import MsgrError
from msgr_nodes.stock import stock_graph
from msgr_nodes.graph import Graph
from pairrun import check_history, score_pair
from synthpair import make_pair

ROOT = Path(__file__).resolve().parents[1]
ADDITIVE_IDS = {"narrow", "wide", "abe", "star_align", "stars_narrow", "stars_wide", "detail_fit",
                "gradient_model", "remove_model", "save", "save_model"}
DESIGN_IDS = {"narrow", "wide", "abe", "star_align", "stars_narrow", "stars_wide", "mmt_narrow", "mmt_wide",
              "linear_fit", "create_model", "mmt_model", "remove_model", "save", "save_model"}


def _score(pair, path):
    return score_pair(pair, path)


def test_recipe_graph_keeps_the_public_node_ids_and_expressions():
    g = Graph.load(stock_graph("msgr.json"))
    assert set(g.nodes) == DESIGN_IDS
    assert g.get("create_model.expression").endswith("Narrow * med(Wide) / Wide")
    assert g.get("remove_model.expression") == "$T * med(Model) / Model"
    assert g.get("mmt_narrow.remove_layers") == 8 and g.get("mmt_model.remove_layers") == 9
    assert all(n.label for n in g.nodes.values()) and g.meta["description"]
    # only the two input paths are missing
    assert sorted(str(p).split(":")[0] for p in g.validate()) == ["narrow.path", "wide.path"]


def test_additive_graph_shares_the_ids_of_the_shared_nodes():
    g = Graph.load(stock_graph("msgr_additive.json"))
    assert {"narrow", "wide", "save", "save_model", "abe", "star_align", "stars_narrow", "stars_wide",
            "remove_model"} <= set(g.nodes)


@pytest.mark.parametrize("graph", ["msgr.json", "msgr_additive.json"])
def test_stock_graphs_run_end_to_end_from_the_command_line(medium_pair, tmp_path, graph, capsys):
    rc = main(["run", str(stock_graph(graph)), "-s", f"narrow.path={medium_pair / 'narrow.fits'}",
               "-s", f"wide.path={medium_pair / 'wide.fits'}", "-s", f"save.path={tmp_path / 'out.fits'}",
               "-s", f"save_model.path={tmp_path / 'model.fits'}", "--no-cache"])
    assert rc == 0, capsys.readouterr().err
    before = _score(medium_pair, medium_pair / "narrow.fits")
    after = _score(medium_pair, tmp_path / "out.fits")
    assert after["resid_rms"] < before["resid_rms"] / 2
    if graph == "msgr_additive.json":
        assert after["resid_rms"] < 1.0
        assert fits.getheader(tmp_path / "out.fits")["MSGRCHK"] == "passed"


def test_outputs_are_named_after_the_narrow_file(medium_pair, tmp_path):
    for name in ("narrow.fits", "wide.fits"):
        (tmp_path / name).write_bytes((medium_pair / name).read_bytes())
    g = Graph.load(stock_graph("msgr_additive.json"))
    g.set("narrow.path", str(tmp_path / "narrow.fits"))
    g.set("wide.path", str(tmp_path / "wide.fits"))
    assert g.run().ok
    assert (tmp_path / "narrow_msgr.fits").is_file() and (tmp_path / "narrow_msgr_model.fits").is_file()


def test_unrelated_wide_image_is_never_subtracted(medium_pair, tmp_path):
    """A 'wide' image of other sky under the right header: nothing of it is subtracted; the narrow
    image gets the single-image floor instead, announced, and is never made worse."""
    other_sky = make_pair(tmp_path / "other", narrow_size=(800, 600), seed=99)
    fits.writeto(tmp_path / "other.fits", fits.getdata(other_sky / "wide.fits"),
                 fits.getheader(medium_pair / "wide.fits"))
    g = Graph.load(stock_graph("msgr_additive.json"))
    g.set("narrow.path", str(medium_pair / "narrow.fits"))
    g.set("wide.path", str(tmp_path / "other.fits"))
    g.set("save.path", str(tmp_path / "out.fits"))
    g.set("save_model.path", str(tmp_path / "model.fits"))
    res = g.run()
    assert res.ok, res.errors
    header = fits.getheader(tmp_path / "out.fits")
    assert header["MSGRCHK"] == "single-image fallback"
    history = check_history(header)
    assert "does not explain" in history and "chosen by cross-validation" in history
    before = _score(medium_pair, medium_pair / "narrow.fits")
    after = _score(medium_pair, tmp_path / "out.fits")
    assert after["resid_rms"] < before["resid_rms"]
    # within 1.25x of the best single-image tool picked with hindsight: ABE at its best degree
    abe = []
    for degree in range(1, 7):
        a = Graph()
        a.add_node("Load", "narrow", {"path": str(medium_pair / "narrow.fits")})
        a.add_node("ABE", "abe", {"degree": degree})
        a.add_node("Save", "save", {"path": str(tmp_path / f"abe{degree}.fits")})
        a.link("narrow", "image", "abe", "image")
        a.link("abe", "image", "save", "image")
        assert a.run().ok
        abe.append(_score(medium_pair, tmp_path / f"abe{degree}.fits")["resid_rms"])
    assert after["resid_rms"] <= 1.25 * min(abe), (after["resid_rms"], abe)


def test_demo_runs_on_the_bundled_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the README's command: no --out, results in ./msgr-demo
    assert main(["demo", "--no-cache"]) == 0
    (tmp_path / "msgr-demo").rename(tmp_path / "d")
    out = capsys.readouterr().out
    assert (tmp_path / "d" / "narrow_msgr.fits").is_file()
    png = tmp_path / "d" / "before_after.png"
    from PIL import Image as PILImage
    with PILImage.open(png) as im:
        assert im.size == (3 * 1000 + 16, 750)
    line = next(l for l in out.splitlines() if l.startswith("large-scale residual"))
    after = float(line.split(",")[1].split()[0])
    assert after < 1.0


def test_editing_the_model_smoothing_recomputes_only_the_model_cone(medium_pair, tmp_path):
    """The slow, self-checked fit (detail_fit) is cached: a smoothing edit redoes the smoothing step and
    what follows it, and the new model differs."""
    from msgr_nodes.executor import Executor

    g = Graph.load(stock_graph("msgr_additive.json"))
    for key, value in (("narrow.path", str(medium_pair / "narrow.fits")), ("wide.path", str(medium_pair / "wide.fits")),
                       ("save.path", str(tmp_path / "out.fits")), ("save_model.path", str(tmp_path / "model.fits")),
                       ("save.overwrite", True), ("save_model.overwrite", True)):
        g.set(key, value)
    ex = Executor(jobs=2)
    first = ex.run(g)
    assert first.ok and "detail_fit" in first.computed
    model1 = first.output("gradient_model").data.copy()
    g.set("gradient_model.smoothing", 50.0)
    second = ex.run(g)
    assert second.ok
    assert set(second.computed) == {"gradient_model", "remove_model", "save", "save_model"}
    assert np.abs(second.output("gradient_model").data - model1).max() > 1e-5


def test_the_recommended_graph_names_its_nodes_by_what_they_are():
    g = Graph.load(stock_graph("msgr_additive.json"))
    assert set(g.nodes) == ADDITIVE_IDS
    assert g.nodes["detail_fit"].type == "DetailFit" and g.nodes["gradient_model"].type == "LargeScales"
    with pytest.raises(MsgrError, match="no node 'mmt_model' in this graph: it is called 'gradient_model' now"):
        g.set("mmt_model.smoothing", 0.2)
    with pytest.raises(MsgrError, match="no node 'nope' in this graph; nodes: narrow, wide"):
        g.set("nope.smoothing", 0.2)


@pytest.mark.parametrize("graph", ["msgr.json", "msgr_additive.json"])
def test_the_wide_images_abe_does_not_take_its_nebula_for_background(tmp_path, graph):
    """The wide image covers more sky and more nebula than the narrow one, and what its ABE takes of
    the nebula goes, times the slope, into the narrow image's model. Nebula only adds light, so the
    stock graphs keep boxes below the surface down to 6.4 sigma (unbalance 8 x deviation 0.8): with
    ABE's usual 1.8 x 0.8 sigma, the darkest sky between the nebula was rejected as if it were
    structure, and the model rose into the nebula (2.6 % of sky on these pairs; 1.8 now, with
    unbalance 4 or 8 alike; the narrow results of the README's quality table were worse on 18 of 26
    scenes). The cascade keeps ABE's usual setting on its ultra-wide image: its own figures were
    measured with it."""
    errors = []
    for seed in (7, 11):
        pair = make_pair(tmp_path / f"s{seed}", narrow_size=(800, 600), seed=seed, nebula_level=4000.0)
        g = Graph.load(stock_graph(graph))
        g.set("narrow.path", str(pair / "narrow.fits"))
        g.set("wide.path", str(pair / "wide.fits"))
        res = g.run(["abe"])
        assert res.ok, res.errors
        wide = fits.getdata(pair / "wide.fits")
        model = wide - res.output("abe", "image").data[0]
        r = model - fits.getdata(pair / "wide_gradient.fits")
        errors.append(100 * float(np.std(r - np.median(r))) / (900.0 / 65535))
    assert np.mean(errors) < 2.0, errors
