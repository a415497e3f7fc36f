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
