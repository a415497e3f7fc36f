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


def test_trained_and_train_cached_share_one_store_entry(tmp_store):
    """A chapter with an ``Experiment`` and a caller without one get the same stored network."""
    from robustlib import experiment

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28, generator=g), torch.arange(64) % 10
    exp = experiment.start("baselines", "smoke", 0, "cpu")
    model, history = baselines.trained(exp, "relu_mlp", 1, x, y)
    assert len(history) == 1
    files = sorted(p.name for p in (tmp_store / "smoke" / "baselines").iterdir())
    again, history_again = baselines.train_cached(
        "relu_mlp", 1, x, y, notebook="baselines", profile="smoke", progress=False
    )
    assert sorted(p.name for p in (tmp_store / "smoke" / "baselines").iterdir()) == files  # loaded, not retrained
    assert history_again == history
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
