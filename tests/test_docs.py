from pathlib import Path

from msgr_nodes.docs import END, START, node_reference_markdown
from msgr_nodes.registry import discover

ROOT = Path(__file__).resolve().parents[1]


def test_readme_node_reference_is_generated_from_the_specs():
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip() == node_reference_markdown(discover(entry_points=False)).strip(), \
        "README's node reference is stale: run  python -m msgr_nodes.docs README.md"


def test_every_node_parameter_has_help_and_every_public_function_a_docstring():
    import importlib
    import inspect
    import pkgutil

    import msgr_nodes

    for spec in discover(entry_points=False):
        assert spec.help, spec.type
        for p in spec.params:
            assert p.help, f"{spec.type}.{p.name}"
    for info in pkgutil.walk_packages(msgr_nodes.__path__, "msgr_nodes."):
        if ".gui" in info.name:
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert obj.__doc__, f"{info.name}.{name} has no docstring"
