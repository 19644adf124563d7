"""The house as the README draws it: its architecture tree names every folder there is and every
layer the boundary test keeps, and every model says in a line what it is."""

from __future__ import annotations

import ast
import re

from django.apps import apps

from tests.test_boundaries import RANK, ROOT, parsed


def architecture_tree() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_tree_names_every_package_folder_of_the_product():
    tree = architecture_tree()
    folders = {
        f"{path.parent.relative_to(ROOT)}/"
        for top in ("sgweb", "worker", "bench")
        for path in (ROOT / top).glob("*/__init__.py")
    } | {"worker/", "bench/"}
    folders |= {f"sgweb/{path.name}/" for path in (ROOT / "sgweb").iterdir() if path.is_dir()}
    folders -= {"sgweb/__pycache__/"}
    named = set(re.findall(r"^((?:sgweb/)?[a-z_]+/)\s", tree, re.MULTILINE))
    assert folders - named == set(), "folders the README's tree does not show"
    assert named - folders == set(), "the README's tree shows folders that do not exist"


def test_the_readme_tree_shows_every_layer_the_boundary_test_keeps():
    tree = architecture_tree()
    for package in RANK:
        if package.startswith("sgweb.") and (ROOT / package.replace(".", "/")).is_dir():
            assert f"{package.replace('.', '/')}/" in tree, package
        elif package.startswith("sgweb."):
            name = package.split(".")[1]
            assert re.search(rf"\b{name}\b", tree), package
        else:
            assert f"{package}/" in tree, package


def test_every_model_of_ours_has_a_docstring():
    # Django writes "Name(field, field, ...)" into a model's __doc__ when the class has none.
    missing = [
        model.__name__
        for model in apps.get_models()
        if model.__module__.startswith("sgweb.")
        and (not model.__doc__ or model.__doc__.startswith(f"{model.__name__}("))
    ]
    assert missing == []


def test_only_the_settings_and_the_agents_config_read_the_environment():
    """Web-side settings are read once in settings.py, the agent's in worker/config.py; the
    entry points only name the settings module (`os.environ.setdefault`)."""
    readers = {"sgweb/settings.py", "worker/config.py"}
    offenders = []
    for top in ("sgweb", "worker"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name in readers or "migrations" in path.parts:
                continue
            tree = parsed(path)
            naming = {
                id(node.func.value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.setdefault"
            }
            offenders += [
                f"{name}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute)
                and ast.unparse(node) in ("os.getenv", "os.environ", "os.environb")
                and id(node) not in naming
            ]
    assert offenders == []
