"""No two product modules import each other, however indirectly (in-function imports count)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "import_circles.py"


def load_finder():
    spec = importlib.util.spec_from_file_location("import_circles", SCRIPT)
    finder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(finder)
    return finder


def test_the_product_has_no_import_circles():
    finder = load_finder()
    assert finder.circles(finder.import_graph(finder.module_files())) == []


def test_the_finder_sees_a_circle_made_by_an_in_function_import(tmp_path):
    finder = load_finder()
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "a.py").write_text("from shop import b\n")
    (tmp_path / "shop" / "b.py").write_text("def f():\n    from shop.c import g\n")
    (tmp_path / "shop" / "c.py").write_text("from .a import x\n")
    graph = finder.import_graph(finder.module_files(tmp_path))
    assert finder.circles(graph) == [["shop.a", "shop.b", "shop.c"]]
