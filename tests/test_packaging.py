"""Setup files agree with each other: the two conda environments, pyproject's dependencies, the Makefile."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _conda_deps(path):
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return sorted(d for d in deps if isinstance(d, str))


def test_binder_environment_matches_the_local_one():
    assert _conda_deps(ROOT / "environment.yml") == _conda_deps(ROOT / "binder" / "environment.yml")


def test_conda_environment_covers_the_runtime_dependencies():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    conda = " ".join(_conda_deps(ROOT / "environment.yml"))
    for dep in project["dependencies"] + project["optional-dependencies"]["test"]:
        name = dep.split(">")[0].split("<")[0].split("=")[0].strip()
        assert name in conda, f"{name} is a pip dependency but not in environment.yml"


def test_binder_scripts_are_executable():
    for name in ("postBuild", "start"):
        assert (ROOT / "binder" / name).stat().st_mode & 0o111, f"binder/{name} is not executable"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_every_c_file_is_compiled_into_the_extension():
    from uringkit import _build_native

    compiled = set(_build_native.native_sources())
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "native").rglob("*.c")}
    assert compiled == on_disk


def test_chapters_are_committed_with_outputs_and_without_widget_state():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        nb = nbformat.read(path, 4)
        assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].source.strip() == "import uringkit as uk; uk.setup_notebook()", path.name
        assert all(c.get("execution_count") for c in code), f"{path.name} has cells that were not run"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{path.name} has errors"
        assert sum(c.source.startswith("# ") for c in nb.cells if c.cell_type == "markdown") == 1, "one H1"
