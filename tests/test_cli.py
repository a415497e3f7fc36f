import subprocess
import sys

from robustlib import notebooks


def test_unknown_notebook_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "robustlib", "run", "nosuch"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown notebook 'nosuch'" in out.stderr and "baselines" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_profile_is_rejected_by_the_parser():
    out = subprocess.run([sys.executable, "-m", "robustlib", "run", "baselines", "--profile", "fast"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_parameter_values_are_typed():
    assert notebooks.parse_value("3") == 3
    assert notebooks.parse_value("0.5") == 0.5
    assert notebooks.parse_value("True") is True
    assert notebooks.parse_value("cpu") == "cpu"


def test_toc_lists_the_code_pages():
    pages = notebooks.code_pages()
    assert "notebooks/baselines" in pages and pages[-1] == "book/scorecard"


def test_a_file_outside_notebooks_is_not_run():
    for args in (["run", "README.md"], ["run", "baselines", "-p", "profile", "paper"]):
        out = subprocess.run([sys.executable, "-m", "robustlib", *args], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr, args
    assert notebooks.notebook_path("notebooks/dam.md").name == "dam.md"


def test_verify_reports_a_corrupt_mnist_file_without_a_traceback(tmp_path):
    import os
    import shutil

    from robustlib import data

    raw = data._raw_dir()
    home = tmp_path / "home"
    dest = home / "data" / raw.relative_to(data.paths.data_dir())
    shutil.copytree(raw, dest)
    env = {**os.environ, "ROBUSTLIB_HOME": str(home)}
    victim = next(p for p in dest.iterdir() if p.name.startswith("t10k-labels"))
    victim.write_bytes(victim.read_bytes()[:-10])  # truncated
    out = subprocess.run([sys.executable, "-m", "robustlib", "verify"], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert victim.name in out.stdout and "sha256" in out.stdout
