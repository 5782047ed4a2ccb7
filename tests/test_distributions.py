"""What ``pip install <package>`` gets: the sdists and wheels that ``uv build --all-packages``
makes from a copy of the workspace, built with the lowest hatchling the pyprojects allow, and
with stray files beside each package's sources (a dataset that a README example wrote into the
working folder, a cache, notes), as in a developer's tree.

``bash tools/standalone_check.sh`` runs each package's tests from these artefacts (minutes)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement

WORKSPACE = Path(__file__).resolve().parents[1]
#: distribution name -> its folder
MEMBERS = {
    "depthsim": "packages/depthsim",
    "pcprep": "packages/pcprep",
    "admetrics": "packages/admetrics",
    "vqcore": "packages/vqcore",
    "threedsr": "packages/threedsr",
    "threedsr-cli": "tools/cli",
}
STRAY = ("synthetic_mvtec/puck/test/good/xyz/000.tiff", "cache/1c/scan.npz", "notes.txt")
#: what a build from the unpacked sdist, and its tests, need (pyproject.toml and PKG-INFO are
#: always written; hatchling keeps the .gitignore that selected the files)
SDIST_TOP = {"src", "tests", "README.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}
#: vqcore ships its pretrained backbones (about 2.5 MB each); anything else this big is a mistake
LARGE_OK = re.compile(r"src/vqcore/pretrained/\w+\.pt")


def _project(name: str) -> dict:
    return tomllib.loads((WORKSPACE / MEMBERS[name] / "pyproject.toml").read_text())


def _lowest_hatchling() -> str:
    lowest = set()
    for name in MEMBERS:
        (req,) = map(Requirement, _project(name)["build-system"]["requires"])
        (spec,) = req.specifier
        assert req.name == "hatchling" and spec.operator == ">=", req
        lowest.add(spec.version)
    assert len(lowest) == 1, f"the packages ask for different hatchlings: {lowest}"
    return lowest.pop()


@pytest.fixture(scope="module")
def dist() -> Iterator[Path]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (the workspace is built with it)")
    # Not tmp_path: a --basetemp inside the workspace would nest the copy in it.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ws"
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", ".venv")
        copy.mkdir()
        for f in ("pyproject.toml", ".gitignore", "LICENSE"):
            shutil.copy2(WORKSPACE / f, copy / f)
        for folder in MEMBERS.values():
            shutil.copytree(WORKSPACE / folder, copy / folder, ignore=ignore)
            for stray in STRAY:
                (copy / folder / stray).parent.mkdir(parents=True, exist_ok=True)
                (copy / folder / stray).write_bytes(b"\0" * 4096)
        constraints = Path(tmp) / "build-constraints.txt"
        constraints.write_text(f"hatchling=={_lowest_hatchling()}\n")
        out = Path(tmp) / "dist"
        cmd = [uv, "build", "-q", "--all-packages", "--build-constraints", str(constraints)]
        res = subprocess.run(
            [*cmd, "-o", str(out)], cwd=copy, capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stderr[-3000:]
        yield out


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _wheel(dist: Path, name: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(
        dist / f"{_norm(name)}-{_project(name)['project']['version']}-py3-none-any.whl"
    )


def _sdist(dist: Path, name: str) -> dict[str, tarfile.TarInfo]:
    prefix = f"{_norm(name)}-{_project(name)['project']['version']}/"
    with tarfile.open(dist / f"{prefix[:-1]}.tar.gz") as tar:
        members = tar.getmembers()
    assert all(m.name.startswith(prefix) for m in members)
    return {m.name.removeprefix(prefix): m for m in members if m.isfile()}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_metadata_is_what_pypi_accepts_and_says_what_the_pyproject_says(dist, name):
    project = _project(name)["project"]
    version = project["version"]
    with _wheel(dist, name) as whl:
        raw = whl.read(f"{_norm(name)}-{version}.dist-info/METADATA")
    with tarfile.open(dist / f"{_norm(name)}-{version}.tar.gz") as tar:
        pkg_info = tar.extractfile(f"{_norm(name)}-{version}/PKG-INFO").read()
    for text in (raw, pkg_info):
        # validate=True rejects what PyPI's upload check rejects (hatchling < 1.27 wrote
        # License-Expression into Metadata-Version 2.3).
        meta = Metadata.from_email(text, validate=True)
        assert (meta.name, str(meta.version)) == (name, version)
        assert meta.summary == project["description"]
        assert str(meta.requires_python) == project["requires-python"]
        assert meta.license_expression == project["license"] == "MIT"
        assert meta.license_files == ["LICENSE"]
        assert meta.description_content_type == "text/markdown"
        readme = (WORKSPACE / MEMBERS[name] / project["readme"]).read_text()
        assert meta.description.strip() == readme.strip()
        declared = [Requirement(r) for r in project["dependencies"]] + [
            Requirement(f'{r}; extra == "{extra}"')
            for extra, reqs in project.get("optional-dependencies", {}).items()
            for r in reqs
        ]
        assert sorted(map(str, meta.requires_dist)) == sorted(map(str, declared))


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_wheel_holds_the_package_py_typed_and_the_license(dist, name):
    version = _project(name)["project"]["version"]
    info = f"{_norm(name)}-{version}.dist-info"
    with _wheel(dist, name) as whl:
        names = whl.namelist()
        license_text = whl.read(f"{info}/licenses/LICENSE").decode()
    assert {n.split("/")[0] for n in names} == {_norm(name), info}
    assert f"{_norm(name)}/py.typed" in names
    assert license_text == (WORKSPACE / "LICENSE").read_text()
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))]


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_sdist_holds_what_building_and_testing_need_and_nothing_else(dist, name):
    files = _sdist(dist, name)
    assert {f.split("/")[0] for f in files} <= SDIST_TOP  # no dataset, cache or notes
    assert SDIST_TOP - {".gitignore"} <= {f.split("/")[0] for f in files}
    folder = WORKSPACE / MEMBERS[name]
    tests = {p.relative_to(folder).as_posix() for p in (folder / "tests").rglob("*.py")}
    assert tests and tests <= set(files)
    assert files["LICENSE"].size == (WORKSPACE / "LICENSE").stat().st_size
    large = {
        f: m.size for f, m in files.items() if m.size > 256 * 1024 and not LARGE_OK.fullmatch(f)
    }
    assert large == {}


def test_every_package_ships_the_root_license() -> None:
    root = (WORKSPACE / "LICENSE").read_text()
    assert "MIT License" in root
    for folder in MEMBERS.values():
        assert (WORKSPACE / folder / "LICENSE").read_text() == root, folder


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_readme_links_work_on_the_package_index(name: str) -> None:
    # The README is the project page on the index, where a path into the workspace leads nowhere.
    readme = (WORKSPACE / MEMBERS[name] / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert [link for link in links if not link.startswith(("https://", "http://"))] == []


@pytest.mark.parametrize("name", MEMBERS)
def test_workspace_dependencies_are_bounded_to_a_compatible_release(name: str) -> None:
    # In the workspace uv resolves members from their folders; on an index a bare name would
    # let threedsr 0.1.0 pull whatever depthsim is newest, API breaks included.
    from packaging.version import Version

    for dep in map(Requirement, _project(name)["project"]["dependencies"]):
        if dep.name not in MEMBERS:
            continue
        current = Version(_project(dep.name)["project"]["version"])
        next_minor = Version(f"{current.major}.{current.minor + 1}")
        assert current in dep.specifier, f"{name}: {dep} excludes {dep.name} {current}"
        assert next_minor not in dep.specifier, f"{name}: {dep} admits {dep.name} {next_minor}"
