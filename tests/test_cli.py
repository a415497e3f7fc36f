import subprocess
import sys

from robustlib import notebooks


def test_unknown_notebook_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "robustlib", "run", "nosuch"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown notebook 'nosuch'" in out.stderr and "baselines" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_profile_is_rejected_by_the_parser():
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "run", "baselines", "--profile", "fast"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_parameter_values_are_typed():
    assert notebooks.parse_value("3") == 3
    assert notebooks.parse_value("0.5") == 0.5
    assert notebooks.parse_value("True") is True
    assert notebooks.parse_value("cpu") == "cpu"


def test_toc_lists_the_code_pages():
    pages = notebooks.code_pages()
    assert pages[0] == "book/intro" and "notebooks/baselines" in pages
    assert {"book/scorecard", "book/execution"} <= set(pages)


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


def test_a_bad_parameter_is_one_line_before_any_kernel_starts():
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "run", "notebooks/dam.md", "--profile", "quick", "-p", "seed", "-1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["error: seed must be a non-negative integer, got -1"]
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "run", "dam", "-p", "sead", "1"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "valid: profile, seed, device, retrain" in out.stderr


def test_compute_names_the_valid_papers():
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "compute", "nosuch", "--profile", "smoke"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "valid: baselines, rbfi, dam, abs, bang, mfbm" in out.stderr


def test_every_benchmark_runs_from_the_cli_at_a_tiny_size():
    from robustlib import paths

    names = sorted(p.stem.removeprefix("bench_") for p in (paths.root() / "bench").glob("bench_*.py"))
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "bench", *names, "--args", "--tiny"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for name in names:
        assert f"== bench_{name}.py ==" in out.stdout
