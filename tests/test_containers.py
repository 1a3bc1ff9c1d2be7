"""Container files: no Docker engine runs here, so lint them and check what they reference exists.

The install step inside the images (``pip install -r requirements.txt``) is the same one
``make install`` and CI run, so CI exercises it without Docker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    return str(exe) if exe.exists() else (shutil.which("hadolint") or "")


def test_there_are_dockerfiles_for_app_and_worker():
    names = {p.name for p in DOCKERFILES}
    assert "app.Dockerfile" in names
    assert "worker.Dockerfile" in names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    exe = _hadolint()
    assert exe, "hadolint missing: pip install -r requirements-dev.txt"
    proc = subprocess.run([exe, "--config", str(ROOT / ".hadolint.yaml"), str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_and_installs_what_exists(dockerfile):
    text = dockerfile.read_text()
    for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.M):
        parts = [p for p in line.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (ROOT / src).exists(), f"{dockerfile.name} copies missing {src}"
    for req in re.findall(r"pip install[^\n]*-r\s+(\S+)", text):
        if req.startswith("/"):
            continue  # made inside the image from a copied file (checked through COPY above)
        assert (ROOT / req).exists(), f"{dockerfile.name} installs missing {req}"
    assert re.search(r"^CMD \[", text, flags=re.M), "CMD in exec (JSON) form"


def test_compose_builds_the_app_and_runs_postgres():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres")
    build = services["app"]["build"]
    assert (ROOT / "docker" / build["context"] / build["dockerfile"]).resolve().exists()
    assert services["app"]["environment"]["HPO_STORAGE"].startswith("postgresql")


def test_packages_txt_lists_the_libraries_vtk_needs():
    pkgs = (ROOT / "packages.txt").read_text().split()
    assert {"libegl1", "libgl1"} <= set(pkgs)
