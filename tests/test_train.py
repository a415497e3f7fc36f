import subprocess
import sys
import textwrap

import torch

from robustlib import data, train
from robustlib.papers.baselines.model import MLP

SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from robustlib import data, train
    from robustlib.papers.baselines.model import MLP
    ckpt, crash_at = sys.argv[1], int(sys.argv[2])
    x, y = data.mnist("train")
    torch.manual_seed(0)
    model = MLP(hidden=(32,), activation="relu")
    model.drop = torch.nn.Dropout(0.3)  # a random layer: resuming must restore the RNG stream too
    base = model.forward
    model.forward = lambda z: model.drop(base(z))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = train.default_step(torch.nn.functional.cross_entropy)
    def crashing(m, batch, o):
        if batch.iteration == crash_at:
            os._exit(3)  # killed mid-epoch, after the previous epoch's checkpoint
        return step(m, batch, o)
    hist = train.fit(model, x[:600], y[:600], epochs=4, batch_size=50, seed=5, optimizer=opt,
                     step=crashing, checkpoint=ckpt, progress=False)
    torch.save({k: v for k, v in model.state_dict().items()}, ckpt + "/final.pt")
    print(repr([h["loss"] for h in hist]))
""")


def _run(ckpt, crash_at):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(ckpt), str(crash_at)], capture_output=True, text=True)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    full = _run(a, -1)
    assert full.returncode == 0, full.stderr
    killed = _run(b, 12 * 2 + 5)  # 12 iterations per epoch: dies inside epoch 3
    assert killed.returncode == 3
    resumed = _run(b, -1)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == full.stdout  # same per-epoch losses, including the epochs before the kill
    wa, wb = torch.load(a / "final.pt"), torch.load(b / "final.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_result_and_hooks():
    x, y = data.mnist("train")
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = MLP(hidden=(16,))
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        lrs, clamps = [], []
        hist = train.fit(
            m,
            x[:300],
            y[:300],
            epochs=2,
            batch_size=64,
            seed=3,
            optimizer=opt,
            progress=False,
            lr_lambda=lambda it: 1.0 / (1 + it),
            after_step=lambda mod: clamps.append(1),
            step=None,
            max_iterations=7,
            eval_data=(x[:100], y[:100]),
        )
        lrs.append(opt.param_groups[0]["lr"])
        runs.append((hist, [p.detach().clone() for p in m.parameters()]))
        assert len(clamps) == 7 and hist[-1]["iterations"] == 7 and len(hist) == 2
        assert abs(lrs[-1] - 0.1 / 7) < 1e-12  # factor of the last iteration (6) applied
        assert 0 <= hist[-1]["eval_acc"] <= 1
    (h1, p1), (h2, p2) = runs
    assert [r["loss"] for r in h1] == [r["loss"] for r in h2]
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_predict_restores_training_mode():
    m = MLP(hidden=(8,)).train()
    out = train.predict(m, torch.rand(7, 1, 28, 28), batch_size=3)
    assert out.shape == (7, 10) and m.training
