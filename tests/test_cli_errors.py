"""The command line's structure: each command module imports on its own; only InputError is "bad input"."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from o2l_cli.errors import BadInput, reports_bad_input
from o2l_tf.errors import InputError

MODULES = ("o2l_cli.main", "o2l_cli.demo", "o2l_cli.evaluate", "o2l_cli.predict", "o2l_cli.records",
           "o2l_cli.reproduce", "o2l_cli.synth", "o2l_cli.train", "o2l_cli.errors")


@pytest.mark.parametrize("module", MODULES)
def test_each_cli_module_imports_in_a_fresh_interpreter(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_input_error_becomes_one_line_bad_input_and_other_errors_keep_their_traceback():
    @reports_bad_input
    def user_mistake():
        raise InputError("case.nii: no such file\nmore detail")

    @reports_bad_input
    def library_bug():
        raise ValueError("shapes (3,) and (4,) not aligned")

    with click.Context(click.Command("probe")):
        with pytest.raises(BadInput) as bad:
            user_mistake()
        assert bad.value.exit_code == 2 and bad.value.format_message() == "case.nii: no such file"
        with pytest.raises(ValueError, match="not aligned"):  # not turned into "bad input"
            library_bug()


def test_a_library_bug_exits_1_with_its_traceback(tmp_path, monkeypatch):
    """Through the real entry point: a ValueError that is not an InputError is not reported as the user's."""
    script = ("import sys; import o2l_tf.synth.cohort as c\n"
              "def broken(*a, **k): raise ValueError('internal: bad reshape')\n"
              "c.write_cohort = broken\n"
              "from o2l_cli.main import main; main(['synth', sys.argv[1], '--cases', '1', '--size', '32'])")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "internal: bad reshape" in done.stderr
    assert "error: internal" not in done.stderr


def test_imports_flow_one_way_cli_to_o2l_tf_to_nothing_above_it():
    """Nothing in o2l_tf imports cli or tfrecords_builder (the builder stands on the library, not the reverse)."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "o2l_tf"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.split(".")[0] in ("cli", "tfrecords_builder", "o2l_cli", "o2l_tfrecords_builder")]
    assert not offenders, offenders
