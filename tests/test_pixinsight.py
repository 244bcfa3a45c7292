"""PixInsight icon sets in and out: real exports (tests/data/pixinsight-icons, Apache-2.0), the MSGR
guide's icons written here, hostile files, and lossless round trips of our own graphs."""
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from msgr_nodes.cli import main
from msgr_nodes.executor import Executor
from msgr_nodes.graph import Graph
from msgr_nodes.io.xpsm import NAMESPACE, XpsmError, parse_xpsm, read_xpsm
from msgr_nodes.pixinsight import iconset_from_graph
from msgr_nodes.stock import asset

REAL = Path(__file__).parent / "data" / "pixinsight-icons"


def _row(enabled):
    return (f'<tr><td id="enabled" value="{enabled}"/><td id="biasEnabled" value="true"/><td id="bias" value="0.000"/>'
            '<td id="noiseReductionEnabled" value="false"/><td id="noiseReductionThreshold" value="1.0000"/>'
            '<td id="noiseReductionAmount" value="1.00"/><td id="noiseReductionAdaptive" value="0.0000"/></tr>')


def _mmt(name, k, n):
    rows = "".join(_row("false" if j < k else "true") for j in range(n + 1))
    return (f'<instance class="MultiscaleMedianTransform" version="256" id="{name}_instance">'
            f'<table id="layers" rows="{n + 1}">{rows}</table>'
            '<parameter id="transform" value="MultiscaleMedianTransform"/><parameter id="scaleDelta" value="0"/>'
            '</instance>')


def _pixelmath(name, expression, new_image=""):
    return (f'<instance class="PixelMath" version="256" id="{name}_instance">'
            f'<parameter id="expression">{expression}</parameter><parameter id="expression1"></parameter>'
            '<parameter id="useSingleExpression" value="true"/><parameter id="symbols"></parameter>'
            '<parameter id="rescale" value="false"/><parameter id="truncate" value="true"/>'
            f'<parameter id="createNewImage" value="{"true" if new_image else "false"}"/>'
            f'<parameter id="newImageId">{new_image}</parameter><table id="outputData" rows="0"/></instance>')


def guide_icons(namespace=NAMESPACE) -> bytes:
    """The MSGR guide's icon set as PixInsight writes it (no msgr-nodes descriptions)."""
    instances = [
        '<instance class="StarAlignment" version="256" id="StarAlign_Narrow_instance">'
        '<parameter id="referenceImage">Narrow</parameter><parameter id="referenceIsFile" value="false"/>'
        '<parameter id="distortionCorrection" value="true"/><parameter id="clampingThreshold" value="0.30"/>'
        '<table id="targets" rows="0"/></instance>',
        _mmt("MMT_1", 8, 8),
        '<instance class="LinearFit" version="256" id="LinearFit_Narrow_instance">'
        '<parameter id="referenceViewId">Narrow</parameter><parameter id="rejectLow" value="0.000000"/>'
        '<parameter id="rejectHigh" value="0.920000"/></instance>',
        _pixelmath("CreateModel", "Narrow * med(Wide) / Wide", "Model"),
        _mmt("MMT_2", 9, 9),
        _pixelmath("RemoveModel", "$T * med(Model) / Model"),
    ]
    icons = "".join(f'<icon id="{n}" instance="{n}_instance" xpos="{8 + 60 * i}" ypos="{8 + 32 * i}" '
                    f'workspace="Workspace01"/>' for i, n in enumerate(
                        ["StarAlign_Narrow", "MMT_1", "LinearFit_Narrow", "CreateModel", "MMT_2", "RemoveModel"]))
    return (f'<?xml version="1.0" encoding="UTF-8"?><xpsm version="1.0" xmlns="{namespace}">'
            + "".join(instances) + icons + "</xpsm>").encode()


@pytest.fixture
def guide(tmp_path):
    path = tmp_path / "msgr_guide.xpsm"
    path.write_bytes(guide_icons())
    return path


def test_the_guides_icons_become_a_linked_graph_with_load_nodes_for_the_named_views(guide, tmp_path):
    g, warnings = Graph.from_xpsm(guide, with_warnings=True)
    assert {"StarAlign_Narrow", "MMT_1", "LinearFit_Narrow", "CreateModel", "MMT_2", "RemoveModel",
            "narrow", "wide", "save"} == set(g.nodes)
    assert g.nodes["MMT_1"].type == "MMT" and g.get("MMT_1.remove_layers") == 8 and g.get("MMT_2.remove_layers") == 9
    assert g.nodes["narrow"].type == "Load" and g.nodes["narrow"].label == "Narrow"
    links = {(l.src, l.dst, l.dst_port) for l in g.links}
    assert ("narrow", "StarAlign_Narrow", "reference") in links and ("narrow", "LinearFit_Narrow", "reference") in links
    assert ("narrow", "CreateModel", "Narrow") in links and ("wide", "CreateModel", "Wide") in links
    assert ("CreateModel", "RemoveModel", "Model") in links and ("RemoveModel", "save", "image") in links
    assert g.get("CreateModel.output_name") == "Model" and g.get("RemoveModel.expression") == "$T * med(Model) / Model"
    # which view each icon is applied to is not in the file: named in one warning, not guessed
    unlinked = next(w for w in warnings if w.startswith("not linked"))
    for port in ("StarAlign_Narrow.target", "MMT_1.image", "LinearFit_Narrow.target", "MMT_2.image",
                 "RemoveModel.target"):
        assert port in unlinked
    g.set("narrow.path", "N.fits")  # the ids the README's command line uses
    g.set("wide.path", "W.fits")


def test_an_old_pixinsight_namespace_imports_the_same(tmp_path, guide):
    old = tmp_path / "old.xpsm"
    old.write_bytes(guide_icons("http://www.pixinsight.com"))
    assert Graph.from_xpsm(old).to_dict()["nodes"] == Graph.from_xpsm(guide).to_dict()["nodes"]


def test_export_of_the_recipe_gives_the_guides_icons_with_pixinsight_spellings(tmp_path):
    path = tmp_path / "msgr.xpsm"
    assert main(["export-xpsm", "msgr", "-o", str(path)]) == 0
    text = path.read_text()
    assert f'<xpsm version="1.0" xmlns="{NAMESPACE}"' in text
    icons = read_xpsm(path)
    names = [i.id for i in icons.icons]
    for name in ("StarAlign_Narrow", "MMT_1", "LinearFit_Narrow", "CreateModel", "MMT_2", "RemoveModel"):
        assert name in names
        assert f'id="{name}_instance"' in text
    by_icon = {i.id: icons.instance(i.instance) for i in icons.icons}
    layers = lambda name: [r[0].value for r in by_icon[name].table("layers").rows]  # noqa: E731
    assert layers("MMT_1") == ["false"] * 8 + ["true"] and layers("MMT_2") == ["false"] * 9 + ["true"]
    assert by_icon["MMT_1"].cls == "MultiscaleMedianTransform" and by_icon["MMT_1"].value("scaleDelta") == "0"
    assert by_icon["CreateModel"].value("expression").endswith("Narrow * med(Wide) / Wide")
    assert by_icon["CreateModel"].value("newImageId") == "Model" and by_icon["CreateModel"].value("createNewImage") == "true"
    assert by_icon["RemoveModel"].value("expression") == "$T * med(Model) / Model"
    assert by_icon["LinearFit_Narrow"].value("referenceViewId") == "Narrow"
    assert by_icon["LinearFit_Narrow"].value("rejectHigh") == "0.920000"
    assert by_icon["StarAlign_Narrow"].cls == "StarAlignment" and by_icon["StarAlign_Narrow"].value("referenceImage") == "Narrow"
    assert by_icon["ABE_wide"].value("targetCorrection") == "Subtract"
    assert all(i.workspace == "Workspace01" for i in icons.icons)
    assert main(["export-xpsm", "msgr", "-o", str(path)]) == 1  # an existing file is kept


@pytest.mark.slow
def test_the_exported_recipe_imports_back_and_makes_the_same_image(tmp_path):
    original = Graph.load("msgr")
    original.to_xpsm(tmp_path / "msgr.xpsm")
    back = Graph.from_xpsm(tmp_path / "msgr.xpsm")
    assert back.to_dict()["nodes"] == original.to_dict()["nodes"]
    assert sorted(map(vars, back.links), key=str) == sorted(map(vars, original.links), key=str)
    images = []
    for g in (original, back):
        g.set("narrow.path", str(asset("narrow.fits.fz")))
        g.set("wide.path", str(asset("wide.fits.fz")))
        res = Executor(jobs=2).run(g, ["remove_model"])  # a new executor each: nothing is shared
        assert res.ok, res.errors
        images.append(res.output("remove_model").data)
    assert images[0].dtype == np.float32 and np.array_equal(images[0], images[1])


def test_every_stock_graph_and_every_node_type_round_trip_losslessly(tmp_path):
    g = Graph.load("msgr_additive")
    g.add_node("MMT", "mmt_custom", {"remove_layers": 0, "layers": 5, "enabled": "2-4,R", "scaling": "linear",
                                     "scale_delta": 3}, label="odd MMT")
    g.add_node("LinearFit", "lf", {"reject_high": 0.8})
    g.link("stars_narrow", "image", "mmt_custom", "image")
    g.link("mmt_custom", "image", "lf", "target")
    g.link("narrow", "image", "lf", "reference")
    g.to_xpsm(tmp_path / "a.xpsm")
    back = Graph.from_xpsm(tmp_path / "a.xpsm")
    assert back.to_dict()["nodes"] == g.to_dict()["nodes"]
    assert sorted(map(vars, back.links), key=str) == sorted(map(vars, g.links), key=str)


def _classes(icons):
    found = Counter()

    def walk(inst):
        found[inst.cls] += 1
        for child in inst.children:
            walk(child)

    for inst in icons.instances:
        walk(inst)
    return found


def _expressions(icons):
    out = []

    def walk(inst):
        if inst.cls == "PixelMath":
            out.append(tuple(inst.value(k) for k in ("expression", "expression1", "expression2", "expression3")))
        for child in inst.children:
            walk(child)

    for inst in icons.instances:
        walk(inst)
    return sorted(out, key=str)


@pytest.mark.parametrize("name", ["Foraxx.xpsm", "SHO-Workflow.xpsm"])
def test_real_exports_import_and_export_back_keeping_every_process(name, tmp_path):
    original = read_xpsm(REAL / name)
    g, warnings = Graph.from_xpsm(REAL / name, with_warnings=True)
    leaves = sum(c for cls, c in _classes(original).items() if cls != "ProcessContainer") + \
        sum(1 for i in original.instances if i.cls == "ProcessContainer" and not i.children)
    imported = [n for n in g.nodes.values() if n.type not in ("Load", "Save")]
    assert len(imported) == leaves  # every instance became a node
    g.to_xpsm(tmp_path / "again.xpsm")
    again = read_xpsm(tmp_path / "again.xpsm")
    missing = _classes(original) - _classes(again)
    assert missing == Counter()  # every process class is exported back
    assert set(_classes(again) - _classes(original)) <= {"ProcessContainer"}  # + the Loads and the Save we added
    assert _expressions(again) == _expressions(original)  # byte for byte
    for inst in original.instances:  # and the processes we do not have come back unchanged
        if inst.cls not in ("PixelMath", "AutomaticBackgroundExtractor", "StarXTerminator", "ProcessContainer"):
            assert again.instance(inst.id) == inst, inst.id


def test_processes_we_do_not_have_are_kept_listed_and_refused_in_one_line(tmp_path):
    g, warnings = Graph.from_xpsm(REAL / "SHO-Workflow.xpsm", with_warnings=True)
    gc = g.nodes["GC_each_SHO"]
    assert gc.type == "PixInsightProcess" and g.get("GC_each_SHO.process") == "GradientCorrection"
    assert '<parameter id="' in g.get("GC_each_SHO.xml")  # its parameters stay visible
    problems = [str(p) for p in g.validate(files=False) if p.node == "GC_each_SHO"]
    assert problems == ["GC_each_SHO: GradientCorrection is a PixInsight process msgr-nodes does not have: it is "
                        "kept for export back to PixInsight and cannot run here; replace it by a node that does "
                        "the same, or remove it"]
    assert any(w.startswith("kept but cannot run here: ") and "GradientCorrection" in w and "Script" in w
               for w in warnings)
    # a ProcessContainer's instances are chained in order and go back into their container
    chain = [n for n, node in g.nodes.items() if node.extra.get("xpsm", {}).get("container") == ["for_each_SHO__ADD_CROP"]]
    assert len(chain) >= 3
    assert all((a, b) in {(l.src, l.dst) for l in g.links} for a, b in zip(chain, chain[1:]))
    back = iconset_from_graph(g)
    box = back.instance("for_each_SHO__ADD_CROP_instance")
    assert [c.cls for c in box.children] == [c.cls for c in read_xpsm(REAL / "SHO-Workflow.xpsm").instance(
        "for_each_SHO__ADD_CROP_instance").children]


def test_nested_containers_keep_their_nesting(tmp_path):
    inner = ('<instance class="ProcessContainer" enabled="true">'
             '<instance class="Invert" version="256" enabled="true"/>'
             '<instance class="SCNR" version="256" enabled="false"><parameter id="amount" value="1.00"/></instance>'
             '</instance>')
    text = (f'<xpsm version="1.0" xmlns="{NAMESPACE}"><instance class="ProcessContainer" id="Outer_instance">'
            f'<instance class="Resample" version="256" enabled="true"/>{inner}</instance>'
            '<icon id="Outer" instance="Outer_instance" xpos="10" ypos="10" workspace="Workspace01"/></xpsm>')
    (tmp_path / "n.xpsm").write_text(text)
    g = Graph.from_xpsm(tmp_path / "n.xpsm")
    back = iconset_from_graph(g).instance("Outer_instance")
    assert [c.cls for c in back.children] == ["Resample", "ProcessContainer"]
    assert [c.cls for c in back.children[1].children] == ["Invert", "SCNR"]
    assert back.children[1].children[1].enabled == "false"


def test_an_mmt_that_is_not_an_msgr_smoothing_is_marked_and_its_table_kept(tmp_path):
    rows = "".join(_row(e) for e in ("true", "true", "false", "false", "false"))
    text = (f'<xpsm version="1.0" xmlns="{NAMESPACE}"><instance class="MultiscaleMedianTransform" version="256" '
            f'id="Sharpen_instance"><table id="layers" rows="5">{rows}</table></instance>'
            '<icon id="Sharpen" instance="Sharpen_instance" xpos="0" ypos="0"/></xpsm>')
    (tmp_path / "s.xpsm").write_text(text)
    g, warnings = Graph.from_xpsm(tmp_path / "s.xpsm", with_warnings=True)
    assert g.get("Sharpen.remove_layers") == 0 and g.get("Sharpen.enabled") == "1,2"
    assert any("Sharpen (MultiscaleMedianTransform): not an MSGR smoothing" in w for w in warnings)
    table = iconset_from_graph(g).instance("Sharpen_instance").table("layers")
    assert [r[0].value for r in table.rows] == ["true", "true", "false", "false", "false"]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE xpsm [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<xpsm version="1.0" xmlns="http://www.pixinsight.com/xpsm"><instance class="PixelMath" id="x_instance">
<parameter id="expression">&h;</parameter></instance></xpsm>"""


def test_an_entity_bomb_or_an_external_entity_is_refused_fast_and_reads_nothing(tmp_path, capsys):
    t0 = time.perf_counter()
    with pytest.raises(XpsmError, match="refused: the file declares a DTD or entities"):
        parse_xpsm(BOMB)
    assert time.perf_counter() - t0 < 1.0
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    external = (f'<?xml version="1.0"?><!DOCTYPE xpsm [<!ENTITY s SYSTEM "file://{secret}">]>'
                f'<xpsm version="1.0" xmlns="{NAMESPACE}"><instance class="PixelMath" id="x_instance">'
                '<parameter id="expression">&s;</parameter></instance></xpsm>').encode()
    (tmp_path / "ext.xpsm").write_bytes(external)
    assert main(["import-xpsm", str(tmp_path / "ext.xpsm"), "-o", str(tmp_path / "g.json")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "TOP SECRET" not in err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.parametrize("content, message", [
    (b"not xml at all", "not valid XML"),
    (b'<graph xmlns="x"/>', "not a PixInsight icon set"),
    (f'<xpsm xmlns="{NAMESPACE}"><icon id="a" instance="missing" xpos="0" ypos="0"/></xpsm>'.encode(),
     "icon 'a' shows instance 'missing', which the file lacks"),
])
def test_a_bad_icon_set_is_named_in_one_line(tmp_path, capsys, content, message):
    (tmp_path / "bad.xpsm").write_bytes(content)
    assert main(["import-xpsm", str(tmp_path / "bad.xpsm"), "-o", str(tmp_path / "g.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'bad.xpsm'}: ") and message in err and err.count("\n") == 1


def test_import_xpsm_writes_a_graph_file_the_cli_runs_by_node_id(guide, tmp_path, capsys):
    out = tmp_path / "guide.json"
    assert main(["import-xpsm", str(guide), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: not linked" in err and f"wrote {out}" in err
    assert main(["import-xpsm", str(guide), "-o", str(out)]) == 1  # an existing file is kept
    assert main(["validate", str(out), "-s", f"narrow.path={asset('narrow.fits.fz')}",
                 "-s", f"wide.path={asset('wide.fits.fz')}"]) == 1
    problems = capsys.readouterr().err
    assert "MMT_1: input 'image' (image) is not connected" in problems and "narrow.path" not in problems
