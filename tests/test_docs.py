import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from msgr_nodes.docs import END, START, generated_sections, node_reference_markdown, section
from msgr_nodes.registry import discover

ROOT = Path(__file__).resolve().parents[1]


def test_readme_node_reference_is_generated_from_the_specs():
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip() == node_reference_markdown(discover(entry_points=False)).strip(), \
        "README's node reference is stale: run  python -m msgr_nodes.docs README.md"


def test_every_generated_readme_section_is_up_to_date():
    text = (ROOT / "README.md").read_text("utf-8")
    sections = generated_sections()
    assert len(sections) == 2  # the node reference and the PixInsight mapping
    for (start, end), body in sections.items():
        assert section(text, start, end).strip() == body.strip(), \
            f"README's {start} is stale: run  python -m msgr_nodes.docs README.md"


def undocumented(mod: ModuleType) -> list[str]:
    """Public functions and classes defined in ``mod`` without a docstring of their own (the text
    ``@dataclass`` writes, ``Name(field: type, ...)``, is not one)."""
    missing = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            doc = obj.__doc__ or ""
            if not doc.strip() or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
                missing.append(f"{mod.__name__}.{name}")
    return missing


def test_the_docstring_check_sees_a_bare_dataclass_and_a_bare_function():
    mod = ModuleType("example")

    @dataclass
    class Bare:
        x: int

    @dataclass
    class Documented:
        """Has one."""
        x: int

    def bare():
        pass

    for obj in (Bare, Documented, bare):
        obj.__module__ = "example"
        setattr(mod, obj.__name__, obj)
    assert sorted(undocumented(mod)) == ["example.Bare", "example.bare"]


def _package_modules():
    import msgr_nodes
    import msgr_nodes.nodes

    for package in (msgr_nodes, msgr_nodes.nodes):  # nodes/ is mapped in, so walk it explicitly
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".gui" not in info.name:
                yield importlib.import_module(info.name)


def test_every_node_parameter_has_help_and_every_public_function_a_docstring():
    for spec in discover(entry_points=False):
        assert spec.help, spec.type
        for p in spec.params:
            assert p.help, f"{spec.type}.{p.name}"
    modules = list(_package_modules())
    assert "msgr_nodes.nodes.save" in {m.__name__ for m in modules}
    assert [name for m in modules for name in undocumented(m)] == []
