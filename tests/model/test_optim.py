import math

import pytest
import torch

from ungrok.model import GPT, optim, preset
from ungrok.model.optim import (
    NS_COEFFS,
    Muon,
    OptimizerConfig,
    apply_schedule,
    build_optimizers,
    newton_schulz,
    split_parameters,
)


def _scalar_ns(s: float, steps: int = 5) -> float:
    """The quintic iteration on one (normalised) singular value, in float64."""
    a, b, c = NS_COEFFS
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


def _known_svd(rows: int, cols: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    k = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=torch.float64))
    s = torch.logspace(0.5, -1.4, k, dtype=torch.float64)  # condition number ~80
    return u[:, :k], s, v[:, :k]


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (24, 24)])
def test_newton_schulz_maps_each_singular_value_through_the_quintic(shape):
    # NS keeps the singular vectors and applies p(x) = ax + bx³ + cx⁵ five times to σ/‖G‖_F
    u, s, v = _known_svd(*shape)
    g = u @ torch.diag(s) @ v.T
    expected = u @ torch.diag(torch.tensor([_scalar_ns(x) for x in (s / s.norm()).tolist()],
                                           dtype=torch.float64)) @ v.T
    exact = newton_schulz(g.float(), 5, dtype=torch.float32).double()
    assert torch.allclose(exact, expected, atol=2e-6)
    bf16 = newton_schulz(g.float()).double()  # the paper's precision
    assert (bf16 - expected).abs().max() < 0.03


def test_newton_schulz_on_a_stack_equals_one_matrix_at_a_time():
    gs = torch.randn(3, 40, 12, generator=torch.Generator().manual_seed(5))
    stacked = newton_schulz(gs, dtype=torch.float32)
    for g, out in zip(gs, stacked, strict=True):
        assert torch.allclose(out, newton_schulz(g, dtype=torch.float32), atol=1e-5)


def test_newton_schulz_is_close_to_the_polar_factor():
    # the textbook orthogonalisation U Vᵀ from an SVD: NS lands in the known band around it
    g = torch.randn(32, 96, generator=torch.Generator().manual_seed(3))
    u, _, vh = torch.linalg.svd(g.double(), full_matrices=False)
    polar = u @ vh
    out = newton_schulz(g).double()
    sv = torch.linalg.svdvals(out)
    assert sv.min() > 0.6 and sv.max() < 1.25
    cosine = (out * polar).sum() / (out.norm() * polar.norm())
    assert cosine > 0.97
    # and the singular vectors are the polar factor's: out = U diag(f(σ)) Vᵀ
    assert torch.allclose(u.T @ out @ vh.T, torch.diag(torch.diagonal(u.T @ out @ vh.T)), atol=0.03)


def _identity_ns(monkeypatch):
    """Replace NS by the identity, so the update is the raw (Nesterov) direction."""
    seen = []

    def fake(d, steps=5, dtype=None):  # noqa: ARG001
        seen.append(d.clone())
        return d.clone()

    monkeypatch.setattr(optim, "newton_schulz", fake)
    return seen


def test_muon_momentum_nesterov_and_decay_by_hand(monkeypatch):
    seen = _identity_ns(monkeypatch)
    p = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))  # 2x3: scale 1
    p0 = p.detach().clone()
    opt = Muon([p], lr=0.1, momentum=0.95, weight_decay=0.5)
    g1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    g2 = torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    p.grad = g1.clone()
    opt.step()
    buf1 = 0.05 * g1  # buf <- 0.95·0 + 0.05·g
    d1 = 0.05 * g1 + 0.95 * buf1
    p1 = p0 * (1 - 0.1 * 0.5) - 0.1 * d1
    assert torch.allclose(seen[0][0], d1, atol=1e-7)  # NS sees a stack per shape
    assert torch.allclose(p.detach(), p1, atol=1e-6)
    p.grad = g2.clone()
    opt.step()
    buf2 = 0.95 * buf1 + 0.05 * g2
    d2 = 0.05 * g2 + 0.95 * buf2
    assert torch.allclose(opt.state[p]["momentum_buffer"], buf2, atol=1e-7)
    assert torch.allclose(seen[1][0], d2, atol=1e-7)
    assert torch.allclose(p.detach(), p1 * 0.95 - 0.1 * d2, atol=1e-6)


def test_muon_scales_tall_matrices_by_sqrt_aspect(monkeypatch):
    _identity_ns(monkeypatch)
    p = torch.nn.Parameter(torch.zeros(8, 2))  # rows/cols = 4 -> scale 2
    p.grad = torch.ones(8, 2)
    Muon([p], lr=0.5, momentum=0.0, nesterov=False).step()
    assert torch.allclose(p.detach(), torch.full((8, 2), -0.5 * 2.0))


def test_muon_step_with_real_newton_schulz():
    # a gradient with orthonormal rows has both normalised singular values 1/√2: the update is f(1/√2)·G
    p = torch.nn.Parameter(torch.zeros(2, 4))
    p.grad = torch.tensor([[0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    Muon([p], lr=0.01).step()
    expected = -0.01 * _scalar_ns(1 / math.sqrt(2)) * p.grad / 3.0
    assert torch.allclose(p.detach(), expected, rtol=0.03, atol=0)  # bf16 iterations: ~2% band


def test_muon_refuses_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.nn.Parameter(torch.zeros(3))])


def test_parameter_groups_follow_the_paper():
    model = GPT(preset("tiny"))
    groups = split_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    matrix = sorted(names[id(p)].rsplit(".", 2)[-2] for p in groups["matrix"])
    assert len(groups["matrix"]) == 6 * model.config.n_layer
    assert set(matrix) == {"wq", "wk", "wv", "wo", "up", "down"}
    assert sorted(names[id(p)] for p in groups["embed"]) == [
        "lm_head.weight",
        "value_embeds.1.weight",
        "wte.weight",
    ]
    assert [names[id(p)] for p in groups["scalar"]] == ["blocks.1.attn.ve_lambda"]
    total = sum(len(v) for v in groups.values())
    assert total == len(list(model.parameters()))

    muon, adamw = build_optimizers(model, OptimizerConfig(arm="web"))
    assert muon.param_groups[0]["lr"] == 0.02 and muon.param_groups[0]["weight_decay"] == 0.0
    assert [g["lr"] for g in adamw.param_groups] == [0.2, 0.02]  # embeddings + head, then λ at matrix_lr
    assert all(g["weight_decay"] == 0 and g["betas"] == (0.9, 0.95) for g in adamw.param_groups)


def test_arms_fill_defaults_and_explicit_fields_win():
    web = OptimizerConfig(arm="web")
    assert (web.matrix_lr, web.embed_lr, web.weight_decay, web.wd_decay) == (0.02, 0.2, 0.0, "none")
    ts = OptimizerConfig.model_validate({"arm": "ts", "embed_lr": 0.3})
    assert (ts.matrix_lr, ts.embed_lr, ts.weight_decay, ts.wd_decay) == (0.04, 0.3, 0.2, "linear")
    # a dumped config reloads to the same values
    assert OptimizerConfig.model_validate(ts.model_dump()) == ts


def test_apply_schedule_scales_every_group_and_sets_muon_decay():
    model = GPT(preset("tiny"))
    muon, adamw = build_optimizers(model, OptimizerConfig())
    apply_schedule((muon, adamw), 0.25, 0.05)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.01)
    assert muon.param_groups[0]["weight_decay"] == 0.05
    assert [g["lr"] for g in adamw.param_groups] == pytest.approx([0.15, 0.01])
    assert all(g["weight_decay"] == 0 for g in adamw.param_groups)
