"""Tests for robustlib.papers.abs: shapes, latent bank, best-of-samples,
batched Adam vs a per-image reference loop, the envelope gradient, modified softmax, binary ABS,
Latent Descent, the lower bound, distal adversarials, the baselines, the paper's attacks in the
attack registry, and the steps with their keys."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from robustlib.papers.abs import model as A

# --- fixtures ----------------------------------------------------------------------------------


def _random_vaes(seed: int = 0) -> A.ClassVAEs:
    """Untrained ClassVAEs with non-trivial BatchNorm statistics (so folding is really tested)."""
    torch.manual_seed(seed)
    m = A.ClassVAEs()
    for bn in (*m.enc_bn, *m.dec_bn):
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


@pytest.fixture(scope="module")
def vaes() -> A.ClassVAEs:
    return _random_vaes()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    from robustlib import data

    return data.mnist("test")[0][:6].clone()


class TemplateDecoder(nn.Module):
    """G_c(z) = m_c + A_c z (no sigmoid): the inner minimum is ridge regression in closed form.
    With A = 0 every class is a single template m_c."""

    def __init__(self, means: torch.Tensor, scale: float = 0.0, seed: int = 0):
        super().__init__()
        C, D = means.shape
        self.classes, self.latent = C, 2
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("means", means.clone())
        self.register_buffer("A", scale * torch.randn(C, D, 2, generator=g) / math.sqrt(D))
        self.loop = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, L) -> (B, C, D)
        return self.means + torch.einsum("cdl,bcl->bcd", self.A, z)


# --- 1. architecture ---------------------------------------------------------------------------


def test_encoder_decoder_shapes_and_range(vaes):
    x = torch.rand(3, 10, 28, 28)
    mu, logvar = vaes.encode(x)
    assert mu.shape == logvar.shape == (3, 10, 8)  # 2 * 8 values at 1x1, split into mu / logvar
    h = x
    for conv, bn in zip(vaes.enc[:-1], vaes.enc_bn):
        h = bn(conv(h))
    assert vaes.enc[-1](h).shape == (3, 10 * 16, 1, 1)
    out = vaes.decode(torch.randn(3, 10, 8) * 3)
    assert out.shape == (3, 10, 28, 28)
    assert out.min() > 0 and out.max() < 1
    # the paper's last decoder kernel 3 would give 27 x 27 (the authors' code uses 4, giving 28)
    assert A.ClassVAEs(last_kernel=3).eval().decode(torch.zeros(1, 10, 8)).shape == (1, 10, 27, 27)


def test_grouped_and_looped_execution_agree(vaes):
    x = torch.rand(4, 10, 28, 28)
    vaes.set_loop(True)
    a = vaes(x)[0]
    vaes.set_loop(False)
    b = vaes(x)[0]
    vaes.set_loop(True)
    assert torch.allclose(a, b, atol=1e-5)


def test_classes_are_independent_models(vaes):
    """Changing class 3's input changes only class 3's reconstruction (no cross-talk via BN or
    groups), and the per-class decoder of the reference equals group c of the stacked one."""
    x = torch.rand(2, 10, 28, 28)
    x2 = x.clone()
    x2[:, 3] = torch.rand(2, 28, 28)
    a, b = vaes(x)[0], vaes(x2)[0]
    diff = (a - b).abs().flatten(2).amax(2).amax(0)
    assert diff[3] > 0 and torch.all(diff[torch.arange(10) != 3] == 0)
    z = torch.randn(5, 10, 8)
    dec = A.class_decoder(vaes)
    full = vaes.decode(z).reshape(5, 10, -1)
    for c in (0, 7):
        assert torch.allclose(dec(c, z[:, c]), full[:, c], atol=1e-6)


def test_folded_decoder_matches_eval_decoder(vaes):
    fd = A.FoldedDecoder(vaes)
    z = torch.randn(7, 10, 8)
    ref = vaes.decode(z).reshape(7, 10, -1)
    assert torch.allclose(fd(z), ref, atol=1e-5)
    fd.loop = False
    assert torch.allclose(fd(z), ref, atol=1e-5)


def test_vae_loss_and_kl_annealing():
    x = torch.rand(2, 10, 28, 28)
    rec = torch.rand(2, 10, 28, 28)
    mu, logvar = torch.randn(2, 10, 8), torch.randn(2, 10, 8) * 0.1
    total, r, kl = A.vae_loss(x, rec, mu, logvar, beta=3.0)
    r_ref = sum(((x[b, c] - rec[b, c]) ** 2).sum() for b in range(2) for c in range(10)) / 2
    kl_ref = (
        sum(0.5 * (mu[b, c] ** 2 + logvar[b, c].exp() - 1 - logvar[b, c]).sum() for b in range(2) for c in range(10))
        / 2
    )
    assert torch.allclose(r, r_ref) and torch.allclose(kl, kl_ref, rtol=1e-5)
    assert torch.allclose(total, r_ref + 3.0 * kl_ref, rtol=1e-5)
    assert A.kl_weight(0, 100, 50) == 10.0
    assert A.kl_weight(2500, 100, 50) == pytest.approx(5.5)
    assert A.kl_weight(5000, 100, 50) == 1.0 and A.kl_weight(10**6, 100, 50) == 1.0


def test_class_rows_hold_one_class_per_channel():
    from robustlib import data

    x, y = data.mnist("train")
    x, y = x[:300], y[:300]
    rows = A.class_rows(x, y, seed=1)
    counts = torch.bincount(y, minlength=10)
    assert rows.shape == (counts.max().item(), 10, 28, 28)
    flat = x.flatten(1)
    for c in (0, 5, 9):
        for r in (0, len(rows) - 1):
            match = (flat == rows[r, c].flatten()).all(1)
            assert match.any() and (y[match] == c).all()
    assert torch.equal(rows, A.class_rows(x, y, seed=1))
    assert A.class_rows(x, y, n_per_class=7).shape == (7, 10, 28, 28)


# --- 2. inference ------------------------------------------------------------------------------


def test_latent_bank_keeps_highest_density_draws():
    bank = A.latent_bank(8000, 8, seed=3)
    assert bank.shape == (8000, 8)
    g = torch.Generator().manual_seed(3)
    draws = torch.randn(8889, 8, generator=g)  # 8000 / (1 - 0.1) = 8888.9 -> 8889 draws
    norms = draws.norm(dim=1).sort().values
    assert bank.norm(dim=1).max() <= norms[7999] + 1e-6
    assert (bank.norm(dim=1) <= norms[7999] + 1e-6).all() and norms[8000] >= bank.norm(dim=1).max()
    assert torch.equal(bank, A.latent_bank(8000, 8, seed=3))
    assert not torch.equal(bank, A.latent_bank(8000, 8, seed=4))
    with pytest.raises(ValueError, match="n must be >= 1"):
        A.latent_bank(0)


def test_best_sample_is_the_true_minimum(vaes, images):
    model = A.ABS(vaes, A.ABSConfig(n_samples=300, steps=0))
    loss, idx = model.best_samples(images.flatten(1))
    dec = A.class_decoder(vaes)
    x = images.flatten(1).double()
    for c in (0, 4, 9):
        g = dec(c, model.bank_z).double()  # (S, 784)
        brute = ((x[:, None] - g[None]).square().sum(2) + 0.5 * model.bank_z.double().square().sum(1)) / 784
        assert torch.allclose(loss[:, c].double(), brute.min(1).values, rtol=1e-5)
        # the chosen sample attains the minimum (ties within float32 rounding allowed)
        chosen = brute.gather(1, idx[:, c : c + 1]).squeeze(1)
        assert torch.allclose(chosen, brute.min(1).values, rtol=1e-5)


def test_refinement_never_increases_loss_and_stays_in_ball(vaes, images):
    model = A.ABS(vaes, A.ABSConfig(n_samples=100, steps=15, lr=0.3, radius=1.5))
    x = images.flatten(1)
    start, idx = model.best_samples(x)
    norms = []
    res = model.refine(x, model.bank_z[idx], on_step=lambda t, z: norms.append(z.norm(dim=2).max().item()))
    assert len(norms) == 15 and max(norms) <= 1.5 + 1e-5
    assert (res.z.norm(dim=2) <= 1.5 + 1e-5).all()
    # bank samples outside the ball are projected first: compare with the projected start
    z0 = model._project(model.bank_z[idx])
    start_proj = model._loss(x, model.decoder(z0), z0)
    assert (res.loss <= start_proj + 1e-7).all()
    assert (res.loss < start_proj - 1e-6).any()  # it does improve somewhere


def test_score_is_elbo_at_returned_latent(vaes, images):
    model = A.ABS(vaes, A.ABSConfig(n_samples=100, steps=5))
    res = model.infer(images)
    scores = model(images)
    dec = A.class_decoder(vaes)
    for c in (1, 8):
        g = dec(c, res.z[:, c])
        ell = -((images.flatten(1) - g).square().sum(1) + 0.5 * res.z[:, c].square().sum(1)) / 784
        assert torch.allclose(scores[:, c], ell, atol=1e-6)
    assert (res.loss <= res.start_loss + 1e-7).all()


def test_batched_scores_match_per_image_reference(vaes, images):
    cfg = A.ABSConfig(n_samples=200, steps=8)
    model = A.ABS(vaes, cfg)
    res = model.infer(images[:3])
    loss, z = A.reference_scores(A.class_decoder(vaes), model.bank_z, images[:3], cfg)
    assert torch.allclose(res.loss, loss, atol=1e-6)
    assert torch.allclose(res.z, z, atol=1e-4)
    # binary ABS with gamma: the reference binarises too; scores are -gamma * loss
    bcfg = A.ABSConfig(n_samples=200, steps=4, binary=True, gamma=A.GAMMA)
    bmodel = model.variant(binary=True, gamma=A.GAMMA, steps=4)
    bl, _ = A.reference_scores(A.class_decoder(vaes), model.bank_z, images[:3], bcfg)
    assert torch.allclose(bmodel(images[:3]), -torch.tensor(A.GAMMA) * bl, atol=1e-6)


def test_envelope_gradient_matches_closed_form():
    """Linear decoders: min_z ||r - A z||^2 + 1/2 ||z||^2 = r^T M r with M = I - A (A^T A + I/2)^-1 A^T,
    r = x - m; so d score / dx = -(2/784) M r. ABS's envelope gradient must match it."""
    g = torch.Generator().manual_seed(0)
    means = torch.rand(10, 784, generator=g) * 0.5
    dec = TemplateDecoder(means, scale=1.0)
    model = A.ABS(dec, A.ABSConfig(n_samples=500, steps=300, lr=0.02, radius=math.inf))
    x = (torch.rand(2, 1, 28, 28, generator=g) * 0.5).requires_grad_(True)
    scores = model(x)
    c = 4
    (grad,) = torch.autograd.grad(scores[:, c].sum(), x)
    Am = dec.A[c].double()  # (784, 2)
    M = torch.eye(784, dtype=torch.float64) - Am @ torch.linalg.solve(
        Am.T @ Am + 0.5 * torch.eye(2, dtype=torch.float64), Am.T
    )
    r = x.detach().flatten(1).double() - means[c].double()
    exact_grad = -(2 / 784) * r @ M
    exact_score = -(r @ M * r).sum(1) / 784
    assert torch.allclose(scores[:, c].double(), exact_score, rtol=1e-4)
    err = (grad.flatten(1).double() - exact_grad).norm(dim=1) / exact_grad.norm(dim=1)
    assert (err < 2e-3).all()  # Adam ends within ~lr of z*: the gradient error is first order in it


def test_forward_cache_is_exact_and_invalidated(vaes, images):
    model = A.ABS(vaes, A.ABSConfig(n_samples=50, steps=2))
    a = model(images)
    b = model(images.clone())  # same values: cache hit, same numbers
    assert torch.equal(a, b)
    x2 = images.clone()
    x2[0, 0, 10, 10] += 0.5 if x2[0, 0, 10, 10] < 0.5 else -0.5
    assert not torch.equal(model(x2)[0], a[0])
    assert torch.equal(model(x2)[1:], a[1:])


def test_modified_softmax():
    s = -torch.rand(5, 10) * 0.05
    p = A.modified_softmax(s)
    assert torch.allclose(p.sum(1), torch.ones(5))
    assert A.ALPHA == 440 and A.ETA == 0.000039
    ref = torch.exp(440 * s.double()) + 0.000039
    assert torch.allclose(p.double(), ref / ref.sum(1, keepdim=True), atol=1e-6)
    far = torch.full((2, 10), -1e4)  # no class explains x: eta dominates -> uniform
    assert torch.allclose(A.modified_softmax(far), torch.full((2, 10), 0.1))
    # ProbabilityModel returns its log for ABS
    dec = TemplateDecoder(torch.rand(10, 784) * 0.3)
    model = A.ABS(dec, A.ABSConfig(n_samples=10, steps=0))
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(A.ProbabilityModel(model)(x).exp(), A.modified_softmax(model(x)), atol=1e-6)


def test_binary_abs_binarises_and_weights_classes(vaes, images):
    model = A.ABS(vaes, A.ABSConfig(n_samples=100, steps=3))
    binary = model.variant(binary=True, gamma=A.GAMMA)
    xb = (images >= 0.5).float()
    # binary ABS on x == plain ABS on the binarised x, times -gamma / -1
    assert torch.allclose(binary(images), model(xb) * torch.tensor(A.GAMMA), atol=1e-7)
    assert binary.prepare(torch.tensor([[0.49999, 0.5, 0.7, 0.0]]).reshape(1, 1, 2, 2)).tolist() == [[0, 1, 1, 0]]
    # an L-inf perturbation smaller than every pixel's distance to 0.5 changes nothing
    margin = (images - 0.5).abs().flatten(1).amin(1).min().item()
    g = torch.Generator().manual_seed(0)
    delta = (torch.rand(images.shape, generator=g) * 2 - 1) * 0.999 * margin
    xp = (images + delta).clamp(0, 1)
    assert torch.equal(binary(xp), binary(images))
    with pytest.raises(ValueError, match="gamma needs 10 values"):
        model.variant(gamma=(1.0, 2.0))
    with pytest.raises(ValueError, match="shares the decoded bank"):
        model.variant(n_samples=7)


def test_binarize_straight_through_gradient():
    x = torch.tensor([0.2, 0.6], requires_grad=True)
    b = A.binarize_st(x)
    assert b.tolist() == [0.0, 1.0]
    (g,) = torch.autograd.grad((b * torch.tensor([3.0, 5.0])).sum(), x)
    assert g.tolist() == [3.0, 5.0]


# --- 3. Latent Descent, lower bound, distal ----------------------------------------------------


def _template_problem(seed: int = 0):
    """Ten class templates = the mean training image of each digit; test images these
    nearest-template ABS models classify correctly."""
    from robustlib import data

    x, y = data.mnist("train")
    means = torch.stack([x[:3000][y[:3000] == c].mean(0).flatten() for c in range(10)])
    model = A.ABS(TemplateDecoder(means), A.ABSConfig(n_samples=20, steps=0, beta=1.0))
    xt, yt = data.mnist("test")
    xt, yt = xt[:40], yt[:40]
    ok = model(xt).argmax(1) == yt
    return model, means, xt[ok][:8], yt[ok][:8]


def test_latent_descent_returns_adversarials_and_brackets_t():
    model, _, x, y = _template_problem()
    n_coarse, n_bisect = 11, 5
    adv, t, t_lo = A.latent_descent(model, x, y, n_coarse=n_coarse, n_bisect=n_bisect)
    assert torch.isfinite(t).all() and (t > 0).all()
    assert (model(adv).argmax(1) != y).all()
    assert ((adv >= 0) & (adv <= 1)).all()
    spacing = 1 / (n_coarse - 1)
    assert (t_lo < t).all() and (t - t_lo <= spacing / 2**n_bisect + 1e-6).all()
    # with fixed templates the best other reconstruction never changes: the clean end is clean
    scores = model(x)
    other = scores.masked_fill(torch.nn.functional.one_hot(y, 10).bool(), -math.inf).argmax(1)
    target = model.decoder.means[other]
    x_lo = (1 - t_lo[:, None]) * x.flatten(1) + t_lo[:, None] * target
    assert (model(x_lo.reshape(x.shape)).argmax(1) == y).all()


def test_latent_descent_attack_signature_and_binary_projection():
    model, _, x, y = _template_problem()
    adv = A.latent_descent_attack(model, x[:3], y[:3], None, n_coarse=5, n_bisect=2)
    assert adv.shape == x[:3].shape
    xx = torch.tensor([0.2, 0.8, 0.1, 0.9])
    rec = torch.tensor([0.9, 0.1, 0.2, 0.7])
    assert A._binary_target(xx, rec).tolist() == pytest.approx([0.5, 0.49999, 0.1, 0.9])


def test_lower_bound_hand_computation():
    """Single-template classes: r_c = ||x - m_c|| exactly, r~_y = r_y, k_y = 1/2 ||z*_y||^2 (the
    bank sample closest to 0), so eps* = min_c (r_c^2 - r_y^2 - k_y) / (2 (r_c + r_y)); with k = 0
    this is (r_c - r_y) / 2. It never exceeds the true distance to the nearest decision boundary."""
    model, means, x, y = _template_problem()
    eps = A.lower_bound(model, x, y)
    r = (x.flatten(1)[:, None] - means[None]).double().norm(dim=2)  # (N, C)
    r_y = r.gather(1, y[:, None])
    k_y = 0.5 * model.bank_z.double().norm(dim=1).min() ** 2  # steps = 0: the smallest-norm sample
    onehot = torch.nn.functional.one_hot(y, 10).bool()
    hand = ((r.square() - r_y.square() - k_y) / (2 * (r + r_y))).masked_fill(onehot, math.inf).amin(1)
    assert torch.allclose(eps.double(), hand, rtol=1e-4, atol=1e-6)
    assert (eps.double() <= ((r - r_y) / 2).masked_fill(onehot, math.inf).amin(1) + 1e-6).all()
    assert (eps > 0).all()  # correctly classified and r_c > r_y for all c
    m_y = means[y]
    true = (
        ((r.square() - r_y.square()) / (2 * (means[None] - m_y[:, None]).double().norm(dim=2)))
        .masked_fill(onehot, math.inf)
        .amin(1)
    )
    assert (eps.double() <= true + 1e-6).all()
    with pytest.raises(ValueError, match="plain ABS"):
        A.lower_bound(model.variant(binary=True), x, y)


def test_distal_stops_at_threshold():
    lin = nn.Linear(784, 10)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(10, 784) * 0.05)
        lin.bias.zero_()
    model = A.ProbabilityModel(nn.Sequential(nn.Flatten(), lin))
    x0 = torch.rand(4, 1, 28, 28)
    target = torch.tensor([0, 1, 2, 3])
    xa, p, ok = A.distal(model, x0, target, steps=200, lr=0.05, threshold=0.9)
    assert ok.all() and (p >= 0.9).all()
    assert ((xa >= 0) & (xa <= 1)).all()
    with torch.no_grad():
        assert torch.allclose(model(xa).exp()[torch.arange(4), target], p, atol=1e-5)
    _, p2, ok2 = A.distal(model, x0, target, steps=0)
    assert not ok2.any() and (p2 < 0.9).all()


# --- 4. baselines --------------------------------------------------------------------------------


def test_cnn_architectures_and_binary_view():
    cnn = A.CNN().eval()
    assert cnn(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert [c.out_channels for c in cnn.convs] == [20, 70, 256, 10]
    assert [c.kernel_size[0] for c in cnn.convs] == [5, 4, 3, 5]
    assert [c.stride[0] for c in cnn.convs] == [1, 2, 2, 1]
    sub = A.CNN((32, 32, 64, 10)).eval()
    assert sub(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    b = A.binary_view(cnn)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(b(x), cnn((x >= 0.5).float()))


def test_madry_training_uses_the_library_adversary_with_a_ramped_eps():
    """The Madry CNN's training step takes its adversarials from ``attacks.madry_pgd`` (the one
    Madry adversary): inside the eps-ball and the box, BatchNorm in eval mode while attacking,
    the model's mode restored; eps ramps linearly from 0 to 0.3 over ``ramp_iters`` iterations."""
    from types import SimpleNamespace

    from robustlib.attacks import madry_pgd

    torch.manual_seed(0)
    cnn = A.CNN().train()
    x = torch.rand(5, 1, 28, 28)
    y = torch.arange(5)
    xa = madry_pgd(cnn, x, y, 0.3, steps=3, step_size=0.1)
    assert (xa - x).abs().max() <= 0.3 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert cnn.training  # mode restored
    step = A.madry_step(0.3, 2, ramp_iters=10)
    opt = torch.optim.SGD(cnn.parameters(), lr=0.0)
    assert step(cnn, SimpleNamespace(x=x, y=y, iteration=4), opt)["eps"] == pytest.approx(0.15)
    assert step(cnn, SimpleNamespace(x=x, y=y, iteration=50), opt)["eps"] == pytest.approx(0.3)


# --- 5. the paper's attacks in the one registry ------------------------------------------------


def test_latent_descent_runs_through_the_attack_driver():
    from robustlib import attacks
    from robustlib.papers.abs import attacks as abs_attacks

    model, _, x, y = _template_problem()
    assert attacks.get_attack("latent_descent") is abs_attacks.LATENT_DESCENT
    assert abs_attacks.LATENT_DESCENT.minimal and abs_attacks.LATENT_DESCENT.norm == "l2"
    res = attacks.min_distance(model, x, y, attack="latent_descent", n_coarse=11, n_bisect=5)
    adv, t, _ = A.latent_descent(model, x, y, n_coarse=11, n_bisect=5)
    assert torch.allclose(res.distances, (adv - x).flatten(1).norm(dim=1).double(), atol=1e-5)
    assert torch.isfinite(res.distances).all() and (res.distances > 0).all()
    with pytest.raises(TypeError, match="unknown option.*steps.*valid: n_coarse, n_bisect"):
        attacks.min_distance(model, x, y, attack="latent_descent", steps=3)
    with pytest.raises(ValueError, match="needs an ABS model"):
        A.latent_descent_attack(A.CNN().eval(), x, y)


def test_boundary_and_pointwise_start_from_another_attack():
    """``boundary_from`` / ``pointwise_from``: foolbox's Boundary and Pointwise attacks started from
    a registered minimal attack's adversarials; they only shrink them (never larger), options of
    the start are checked, and the start must be a minimal attack."""
    from robustlib import attacks

    model, _, x, y = _template_problem()
    x, y = x[:2], y[:2]
    descent = {"n_coarse": 6, "n_bisect": 2}
    start = attacks.min_distance(model, x, y, attack="latent_descent", **descent)
    torch.manual_seed(0)
    res = attacks.min_distance(
        model, x, y, attack="boundary_from", steps=3, start="latent_descent", start_options=descent
    )
    assert torch.isfinite(res.distances).all() and (res.distances <= start.distances + 1e-5).all()
    # Pointwise from salt-and-pepper on a cheap linear model (labels: its own predictions)
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    xs = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        ys = linear(xs).argmax(1)
    noise = {"steps": 50}
    torch.manual_seed(1)
    sp = attacks.min_distance(linear, xs, ys, attack="salt_pepper", **noise)
    torch.manual_seed(1)
    l0 = attacks.min_distance(linear, xs, ys, attack="pointwise_from", start="salt_pepper", start_options=noise)
    assert l0.norm == "l0" and torch.isfinite(l0.distances).all() and (l0.distances <= sp.distances).all()
    with pytest.raises(TypeError, match="unknown option"):
        attacks.min_distance(model, x, y, attack="boundary_from", start_options={"nope": 1})
    with pytest.raises(ValueError, match="must be a minimal attack"):
        attacks.min_distance(linear, xs, ys, attack="pointwise_from", start="pgd_torch")


def test_a_start_that_is_not_adversarial_leaves_the_image_unchanged():
    from robustlib.papers.abs import attacks as abs_attacks

    model, _, x, y = _template_problem()
    # Latent Descent with a single coarse point (t = 0 only) finds nothing: no start, no change
    out = abs_attacks.pointwise_from(
        model, x[:2], y[:2], start="latent_descent", start_options={"n_coarse": 1, "n_bisect": 0}
    )
    assert torch.equal(out, x[:2])


# --- 6. the steps and their keys ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_the_steps_are_a_valid_schedule(name):
    from robustlib import experiment
    from robustlib.papers.abs import experiments as E
    from robustlib.papers.abs.profile import PROFILES

    steps = E.steps(PROFILES[name])
    experiment.check_steps(steps)
    names = [s.name for s in steps]
    assert names[:7] == ["vaes", "cnn", "substitute", "madry", "clean", "lower_bound", "distal"]
    assert names[-3:] == ["attacks", "yardstick", "yardstick_baselines"] and len(names) == 10 + len(E.MODELS)


def test_the_quick_keys_are_those_of_the_committed_results():
    """A changed key silently recomputes the quick results (several CPU minutes): keep them."""
    from robustlib import store
    from robustlib.papers.abs import experiments as E
    from robustlib.papers.abs.profile import PROFILES

    prof = PROFILES["quick"]
    keys = {
        "vaes-4b868de511db": E.VAEKey.of(prof),
        "cnn-cnn-1a5f143a91a0": E.CNNKey.of(prof, "cnn"),
        "cnn-substitute-33dba3156d93": E.CNNKey.of(prof, "substitute"),
        "cnn-madry-7ca94776dd37": E.MadryKey.of(prof),
        "clean-664dee1c4c2c": E.ProfileKey(prof),
        "lower-bound-664dee1c4c2c": E.ProfileKey(prof),
        "distal-664dee1c4c2c": E.ProfileKey(prof),
        "attack-abs-latent_descent-ad3a21663a22": E.AttackKey(prof, "ABS", "Latent Descent"),
        "attack-cnn-pointwise-4332c1a246a7": E.AttackKey(prof, "CNN", "Pointwise"),
    }
    for stem, key in keys.items():
        name = stem.rsplit("-", 1)[0]
        assert store.artifact_stem(name, key, notebook="abs", profile="quick", seed=0).name == stem
    labels = {(name, spec.label) for name in E.MODELS for spec in E.attack_plan(name, prof)}
    assert len(labels) == 46  # the committed quick attack artifacts: 8 per baseline, 7 per ABS model
    for name, label in labels:
        stem = store.artifact_stem(
            E._slug(name, label), E.AttackKey(prof, name, label), notebook="abs", profile="quick", seed=0
        )
        assert stem.with_name(stem.name + ".json").exists(), stem.name
