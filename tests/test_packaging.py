"""How o2l installs: three top-level packages, none called ``cli`` or ``tfrecords_builder``.

The repository keeps the folders ``cli/`` and ``tfrecords_builder/`` (the design card's layout); setup.cfg installs
them as ``o2l_cli`` and ``o2l_tfrecords_builder``, so o2l never shadows, and is never shadowed by, another
distribution's top-level ``cli`` package.
"""

from __future__ import annotations

import ast
import configparser
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALLED_AS = {"cli": "o2l_cli", "tfrecords_builder": "o2l_tfrecords_builder"}


def _setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _listed_packages():
    return [line.strip() for line in _setup_cfg()["options"]["packages"].splitlines() if line.strip()]


def test_setup_cfg_lists_every_package_folder_under_its_installed_name():
    folders = sorted(".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("o2l_tf/**/__init__.py"))
    expected = folders + sorted(INSTALLED_AS.values())
    assert sorted(_listed_packages()) == sorted(expected)
    mapping = dict(line.replace(" ", "").split("=") for line in
                   _setup_cfg()["options"]["package_dir"].splitlines() if line.strip())
    assert mapping == {installed: folder for folder, installed in INSTALLED_AS.items()}
    assert "o2l = o2l_cli.main:main" in _setup_cfg()["options.entry_points"]["console_scripts"]


@pytest.mark.parametrize("folder", sorted(INSTALLED_AS))
def test_the_renamed_packages_import_themselves_only_relatively(folder):
    """An absolute ``cli.x`` import would work in the repository and fail once installed as ``o2l_cli``."""
    absolute = []
    for path in (ROOT / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            absolute += [f"{path.name}: {n}" for n in names if n.split(".")[0] in INSTALLED_AS]
    assert not absolute, absolute


def test_outside_the_repository_only_the_o2l_names_import():
    script = ("import importlib.util as u, sys\n"
              "print(' '.join(n for n in ('o2l_tf', 'o2l_cli', 'o2l_tfrecords_builder', 'cli', 'tfrecords_builder')"
              " if u.find_spec(n) is not None))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(sys.executable))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["o2l_tf", "o2l_cli", "o2l_tfrecords_builder"]


def test_a_built_wheel_holds_the_three_packages_and_nothing_else(tmp_path):
    """What ``pip install .`` (not editable) would put in site-packages (the test extra holds the build-system's
    setuptools, so no isolated build environment has to be downloaded)."""
    import shutil

    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ and *.egg-info in the repository
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", *INSTALLED_AS, "o2l_tf"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                          if (ROOT / name).is_dir() else {}))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheels"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel, = (tmp_path / "wheels").glob("o2l-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if not name.split("/")[0].endswith(
        ".dist-info")}
    assert tops == {"o2l_tf", "o2l_cli", "o2l_tfrecords_builder"}
