import shutil

import pytest
import torch

from robustlib import data


def test_mnist_is_verified_and_well_formed():
    data.verify_mnist()
    x, y = data.mnist("train")
    xt, yt = data.mnist("test")
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(torch.bincount(yt), torch.tensor([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]))
    assert y[:5].tolist() == [5, 0, 4, 1, 9]


def test_corrupt_file_is_named_with_both_hashes(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(data._raw_dir(), raw)
    name = "t10k-labels-idx1-ubyte"
    blob = (raw / name).read_bytes()
    (raw / name).write_bytes(blob[:-10])  # truncated
    with pytest.raises(data.DataIntegrityError) as err:
        data.verify_mnist(raw)
    msg = str(err.value)
    assert name in msg and data.MNIST_SHA256[name] in msg and data.sha256(raw / name) in msg
    assert "make data" in msg


def test_missing_file_says_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        data.verify_mnist(tmp_path)


def test_unknown_split():
    with pytest.raises(ValueError, match="valid: 'train', 'test'"):
        data.mnist("validation")


def test_subsets():
    x, y = data.mnist("test")
    xf, yf = data.first(x, y, 10)
    assert torch.equal(yf, y[:10])
    xs, ys = data.stratified(x, y, 103, seed=1)
    counts = torch.bincount(ys, minlength=10)
    assert counts.max() - counts.min() <= 1 and len(ys) == 103
    xs2, ys2 = data.stratified(x, y, 103, seed=1)
    assert torch.equal(xs, xs2) and torch.equal(ys, ys2)
    assert not torch.equal(data.stratified(x, y, 103, seed=2)[1], ys)
    with pytest.raises(ValueError):
        data.first(x, y, 0)
    with pytest.raises(ValueError):
        data.stratified(x, y, 5)
    (tr, _), (va, yv) = data.split_validation(x, y, 1000)
    assert len(tr) == 9000 and torch.equal(yv, y[-1000:])


def test_scales_and_patches():
    x = torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]])
    assert data.binarize(x, 0.5).flatten().tolist() == [0, 0, 1, 1]
    assert data.to_pm1(x).flatten().tolist() == [-1, -0.5, 0, 1]
    assert torch.allclose(data.from_pm1(data.to_pm1(x)), x)
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    p = data.patches(img, 2)
    assert p.shape == (9, 4) and p[0].tolist() == [0, 1, 4, 5] and p[-1].tolist() == [10, 11, 14, 15]


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(3, 28, 28), "shape"),
        (torch.full((2, 1, 28, 28), 1.5), r"\[0, 1\]"),
        (torch.full((2, 1, 28, 28), -0.1), r"\[0, 1\]"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "floating"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_check_images_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        data.check_images(bad)
