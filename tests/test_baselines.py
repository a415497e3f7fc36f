import pytest
import torch

from robustlib.papers.baselines import model as baselines


def test_lenet_shapes_and_parameter_count():
    m = baselines.LeNet(dropout=0.5)
    h = m.conv1(torch.zeros(2, 1, 28, 28))
    assert h.shape == (2, 20, 24, 24)
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert m.ip1.in_features == 800
    assert sum(p.numel() for p in m.parameters()) == 431080  # Caffe's LeNet


def test_nearest_neighbour_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    tx = torch.rand(50, 1, 28, 28, generator=g)
    ty = torch.arange(50) % 10
    q = torch.rand(7, 1, 28, 28, generator=g)
    nn_model = baselines.NearestNeighbour(tx, ty, chunk=3)
    scores = nn_model(q)
    for i in range(7):
        for c in range(10):
            d = min((q[i] - tx[j]).norm().item() for j in range(50) if ty[j] == c)
            assert abs(-scores[i, c].item() - d) < 1e-3


def test_mlp_and_recipes():
    assert baselines.MLP()(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="valid: 'relu', 'sigmoid'"):
        baselines.MLP(activation="tanh")
    with pytest.raises(ValueError, match="valid"):
        baselines.build("resnet")
    assert baselines.recipe("lenet", 2)["batch_size"] == 64
