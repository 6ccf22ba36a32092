"""Each fixture and helper of the test suite has one name and one home: a name defined twice under
tests/ is either the same code written twice (it belongs in a shared module or a conftest.py) or
two different things that a reader would mistake for each other."""

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: A provider module of the email stand-in is a plug-in the server looks up by name
#: (tests/provider_standin/client.py's APIS): each of them has these four, as a Django app has
#: `models`. A package's command line is `main` in its __main__.py.
MODULE_INTERFACE = {
    "provider_standin": {"handle", "throttled", "unavailable", "anymail_settings"},
    "__main__": {"main"},
}


def defined_names(path: Path) -> list[str]:
    """The module-level functions and classes of one file (a fixture by the name it is asked
    for), without the tests themselves and without the names its module interface requires."""
    allowed = MODULE_INTERFACE.get(path.stem, set()) | MODULE_INTERFACE.get(path.parent.name, set())
    names = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        name = node.name
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call):
                name = next((k.value.value for k in decorator.keywords if k.arg == "name"), name)
        if name.startswith(("test_", "Test")) or name in allowed:
            continue
        names.append(name)
    return names


def test_fixture_and_helper_names_are_unique_across_the_tests():
    homes = defaultdict(list)
    for path in sorted(TESTS.rglob("*.py")):
        for name in defined_names(path):
            homes[name].append(str(path.relative_to(TESTS)))
    twice = {name: files for name, files in homes.items() if len(files) > 1}
    assert twice == {}, "defined in more than one place: " + "; ".join(f"{n} in {', '.join(f)}" for n, f in sorted(twice.items()))


def test_the_check_sees_a_name_defined_twice(tmp_path):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test_x.py").write_text(
            "import pytest\n\n@pytest.fixture(name='practice')\ndef _p():\n    pass\n\ndef helper():\n    pass\n\ndef test_a():\n    pass\n"
        )
    assert defined_names(tmp_path / "one" / "test_x.py") == ["practice", "helper"]
    (tmp_path / "provider_standin").mkdir()
    (tmp_path / "provider_standin" / "postmark.py").write_text("def handle():\n    pass\n\ndef other():\n    pass\n")
    assert defined_names(tmp_path / "provider_standin" / "postmark.py") == ["other"]
