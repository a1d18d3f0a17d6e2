"""No file of the suite imports a test module: shared helpers live in tests/harness.py or in a helper module of
their folder (cases.py, ...), so each test module can be read, run and changed on its own."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported(source: str, module: str) -> set[str]:
    """Dotted names of the modules (and of the names ``from ... import``-ed, which may be modules) that the source
    of ``module`` imports, relative imports resolved."""
    package = module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_test_module(name: str) -> bool:
    return name.rpartition(".")[2].startswith("test_") and (ROOT / (name.replace(".", "/") + ".py")).is_file()


def test_no_file_of_the_suite_imports_a_test_module():
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        module = module_name(path)
        found = sorted(name for name in imported(path.read_text(), module) if is_test_module(name) and name != module)
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert not offenders, (
        "test modules imported by other files (move what they share to tests/harness.py or a helper module of "
        f"their folder): {offenders}")


def test_relative_and_absolute_imports_are_resolved():
    source = ("import tests.harness\nfrom tests.roberta import test_parity\nfrom .test_formats import FAMILIES\n"
              "from ..common.test_hub import make_cache\nfrom . import cases\n")
    names = imported(source, "tests.conversion.test_cli")
    assert {"tests.harness", "tests.roberta.test_parity", "tests.conversion.test_formats",
            "tests.common.test_hub", "tests.conversion.cases"} <= names
    assert sorted(name for name in names if is_test_module(name)) == [
        "tests.common.test_hub", "tests.conversion.test_formats", "tests.roberta.test_parity"]
    assert module_name(TESTS / "roberta" / "test_modeling_tf.py") == "tests.roberta.test_modeling_tf"
    assert not is_test_module("tests.harness") and not is_test_module("tests.roberta.test_missing")
