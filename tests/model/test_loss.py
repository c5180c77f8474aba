"""softcap_cross_entropy equals cross_entropy(cap·tanh(h Wᵀ/cap), y) in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ungrok.model.loss import chunked_softcap_cross_entropy, softcap_cross_entropy


def reference(h: torch.Tensor, w: torch.Tensor, y: torch.Tensor, cap: float) -> torch.Tensor:
    """The composition autograd differentiates step by step (what GPT.forward did before)."""
    return F.cross_entropy(cap * torch.tanh((h @ w.t()) / cap), y)


@pytest.mark.parametrize("cap", [15.0, 2.0])
def test_value_and_gradients_match_the_composition(cap):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(96, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = (3 * torch.randn(50, 16, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randint(0, 50, (96,), generator=g)
    loss, z = softcap_cross_entropy(h, w, y, cap)
    gh, gw = torch.autograd.grad(loss, (h, w))
    ref = reference(h, w, y, cap)
    rh, rw = torch.autograd.grad(ref, (h, w))
    assert torch.allclose(loss.double(), ref, atol=1e-6)
    assert torch.allclose(gh, rh, atol=1e-7) and torch.allclose(gw, rw, atol=1e-7)
    assert torch.allclose(z.double(), cap * torch.tanh(h @ w.t() / cap), atol=1e-5)
    assert not z.requires_grad
    assert float(z.abs().max()) <= cap  # the cap holds


def test_gradients_match_central_differences_of_the_composition():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(12, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 7, (12,), generator=g)

    def loss_only(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return softcap_cross_entropy(h, w, y, 3.0)[0]

    loss = loss_only(h, w)
    gh, gw = torch.autograd.grad(loss, (h, w))
    eps = 1e-4
    for tensor, grad in ((h, gh), (w, gw)):
        for idx in [(0, 0), (3, 2), (6, 4)]:
            with torch.no_grad():
                tensor[idx] += eps
                up = reference(h, w, y, 3.0)
                tensor[idx] -= 2 * eps
                down = reference(h, w, y, 3.0)
                tensor[idx] += eps
            assert abs(float(grad[idx]) - float(up - down) / (2 * eps)) < 1e-4


def test_upstream_gradient_scales_the_result():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(8, 4, generator=g, requires_grad=True)
    w = torch.randn(6, 4, generator=g, requires_grad=True)
    y = torch.randint(0, 6, (8,), generator=g)
    (gh1,) = torch.autograd.grad(softcap_cross_entropy(h, w, y, 15.0)[0], h)
    (gh3,) = torch.autograd.grad(3 * softcap_cross_entropy(h, w, y, 15.0)[0], h)
    assert torch.allclose(gh3, 3 * gh1, atol=1e-6)


def test_under_bf16_autocast_the_head_matmuls_are_bf16_and_the_rest_fp32():
    """Value and gradients equal the composition computed on bf16-rounded operands, in fp32."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(64, 16, generator=g, requires_grad=True)
    w = torch.randn(40, 16, generator=g, requires_grad=True)
    y = torch.randint(0, 40, (64,), generator=g)
    with torch.autocast("cpu", torch.bfloat16):
        loss, z = softcap_cross_entropy(h, w, y, 15.0)
    gh, gw = torch.autograd.grad(loss, (h, w))
    assert loss.dtype == z.dtype == gh.dtype == gw.dtype == torch.float32
    # independent expectation: the fp32 composition on bf16-rounded inputs; bf16 gradient
    # matmuls round their operands too, so gradients agree to bf16's ~3 significant digits
    hb, wb = h.detach().bfloat16().float().requires_grad_(), w.detach().bfloat16().float().requires_grad_()
    ref = reference(hb, wb, y, 15.0)
    rh, rw = torch.autograd.grad(ref, (hb, wb))
    assert torch.allclose(loss, ref, atol=1e-4)
    assert torch.allclose(gh, rh, atol=2e-3, rtol=2e-2) and torch.allclose(gw, rw, atol=2e-3, rtol=2e-2)
    fp32_loss, _ = softcap_cross_entropy(h, w, y, 15.0)
    assert not torch.equal(loss, fp32_loss)  # the matmul really ran in bf16


@pytest.mark.parametrize("rows", [1, 7, 32, 96, 500])
def test_chunked_loss_equals_the_one_pass_loss_in_value_and_gradients(rows):
    """Any chunking (dividing the rows or not, larger than all of them) gives the same loss and
    gradients as the one-pass function, and so the composition's."""
    g = torch.Generator().manual_seed(3)
    h = torch.randn(96, 16, generator=g, dtype=torch.float64, requires_grad=True)
    w = (3 * torch.randn(50, 16, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randint(0, 50, (96,), generator=g)
    loss = chunked_softcap_cross_entropy(h, w, y, 15.0, rows)
    gh, gw = torch.autograd.grad(2 * loss, (h, w))
    ref = reference(h, w, y, 15.0)
    rh, rw = torch.autograd.grad(2 * ref, (h, w))
    assert torch.allclose(loss.double(), ref, atol=1e-6)
    assert torch.allclose(gh, rh, atol=1e-7) and torch.allclose(gw, rw, atol=1e-7)
    assert gh.dtype == h.dtype and gw.dtype == w.dtype


def test_chunked_loss_under_bf16_autocast_tracks_the_one_pass_loss():
    g = torch.Generator().manual_seed(4)
    h = torch.randn(256, 32, generator=g, requires_grad=True)
    w = (0.2 * torch.randn(300, 32, generator=g)).requires_grad_()
    y = torch.randint(0, 300, (256,), generator=g)
    with torch.autocast("cpu", torch.bfloat16):
        one, _ = softcap_cross_entropy(h, w, y, 15.0)
        chunked = chunked_softcap_cross_entropy(h, w, y, 15.0, 64)
    a = torch.autograd.grad(one, (h, w))
    b = torch.autograd.grad(chunked, (h, w))
    assert abs(float(one) - float(chunked)) < 1e-5  # same bf16 logits, fp32 reductions
    for x, z in zip(a, b, strict=True):
        assert x.dtype == z.dtype == torch.float32
        assert float((x - z).abs().max()) <= 0.02 * float(x.abs().max())  # bf16 matmul outputs, summed per chunk


def test_chunk_rows_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        chunked_softcap_cross_entropy(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long), 15.0, 0)
