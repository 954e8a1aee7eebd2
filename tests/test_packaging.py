"""What a wheel of rtengine carries: built from this tree with the project's own build backend (hatchling), then
read back as an installer would read it."""

from __future__ import annotations

import email.message
import email.parser
import pathlib
import subprocess
import sys
import zipfile

import pytest
from packaging.specifiers import SpecifierSet

import rtengine

ROOT = pathlib.Path(rtengine.__file__).parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("rtengine-*.whl")
    return zipfile.ZipFile(built)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info") and n.endswith(f"/{name}")]
    return wheel.read(path).decode()


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    return email.parser.Parser().parsestr(_dist_info(wheel, "METADATA"))


def test_the_wheel_ships_the_mit_license_it_declares(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    shipped = _dist_info(wheel, "licenses/LICENSE")
    assert shipped.startswith("MIT License")
    assert "Copyright (c) 2026 rtengine authors" in shipped
    assert shipped == (ROOT / "LICENSE").read_text()


def test_the_python_classifiers_match_requires_python(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    supported = SpecifierSet(meta["Requires-Python"])
    classifiers = meta.get_all("Classifier") or []
    declared = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3.")}
    assert declared == {f"3.{minor}" for minor in range(30) if f"3.{minor}.0" in supported}
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in declared  # the one these tests run on


def test_the_metadata_names_authors_urls_and_what_the_package_is(wheel: zipfile.ZipFile) -> None:
    meta = _metadata(wheel)
    assert meta["Author"] == "rtengine authors"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Documentation", "Repository", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    classifiers = meta.get_all("Classifier") or []
    expected = ("Development Status :: ", "Operating System :: ", "Topic :: ", "Framework :: Trio", "Typing :: Typed")
    for prefix in expected:
        assert any(c.startswith(prefix) for c in classifiers), prefix
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"otel", "docs", "test", "dev"} <= extras
    assert "rtengine/py.typed" in wheel.namelist()
    # the pytest11 entry point's module, at the top level of the wheel (pytest imports it by that name)
    assert "_rtengine_pytest.py" in wheel.namelist()
    assert not [n for n in wheel.namelist() if n.startswith(("tests/", "benchmarks/", "examples/", "docs/"))]
