import math

import pytest
import torch
import torch.nn.functional as F

from ungrok.errors import UngrokError
from ungrok.model import GPT, ModelConfig, list_checkpoints, load_checkpoint, preset, save_checkpoint


def test_paper_preset_has_exactly_the_papers_parameter_count():
    model = GPT(preset("paper-11.5m"))
    assert model.num_params() == 11_534_340
    # docs/method.md §1.1 breakdown: value embeddings on layers 1 and 3 only
    assert sorted(model.value_embeds.keys()) == ["1", "3"]
    blocks = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks") and p.ndim == 2)
    assert blocks == 3_145_728


def test_fresh_model_gives_all_zero_logits():
    torch.manual_seed(0)
    model = GPT(preset("tiny"))
    logits = model(torch.randint(0, 2048, (2, 9)))
    assert logits.shape == (2, 9, 2048)
    assert torch.count_nonzero(logits) == 0


def test_init_scales_follow_the_rule():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=300, n_layer=1, n_head=2, n_embd=64, context=16))
    up = model.blocks[0].mlp.up.weight  # fan_in 64, fan_out 256 -> 1/8 * min(1, 2)
    assert up.std().item() == pytest.approx(1 / 8, rel=0.05)
    assert model.wte.weight.std().item() == pytest.approx(1.0, rel=0.05)


def _reference_forward(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The architecture written out step by step with explicit loops over heads."""
    cfg = model.config
    B, T = idx.shape
    hd = cfg.head_dim

    def rms(x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)

    pos = torch.arange(T, dtype=torch.float32)
    inv = 1.0 / (cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None] * inv[None, :]
    x = rms(model.wte.weight[idx])
    for i, blk in enumerate(model.blocks):
        h = rms(x)
        a = blk.attn
        out = torch.zeros_like(x)
        heads = []
        for hh in range(cfg.n_head):
            sl = slice(hh * hd, (hh + 1) * hd)
            q = h @ a.wq.weight[sl].T
            k = h @ a.wk.weight[sl].T
            v = h @ a.wv.weight[sl].T
            if str(i) in model.value_embeds:
                ve = model.value_embeds[str(i)].weight[idx][..., sl]
                v = a.ve_lambda[0] * v + a.ve_lambda[1] * ve

            def rot(t):
                t1, t2 = t[..., : hd // 2], t[..., hd // 2 :]
                return torch.cat([t1 * ang.cos() - t2 * ang.sin(), t1 * ang.sin() + t2 * ang.cos()], -1)

            q, k = rms(rot(q)), rms(rot(k))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
            heads.append(att.softmax(-1) @ v)
        out = torch.cat(heads, -1) @ a.wo.weight.T
        x = x + out
        x = x + (F.relu(rms(x) @ blk.mlp.up.weight.T) ** 2) @ blk.mlp.down.weight.T
    logits = rms(x) @ model.lm_head.weight.T
    return 15 * torch.tanh(logits / 15)


def test_forward_matches_a_step_by_step_reference():
    torch.manual_seed(1)
    model = GPT(ModelConfig(vocab_size=97, n_layer=3, n_head=2, n_embd=32, context=16))
    with torch.no_grad():  # give the zero-initialised projections some weight
        for p in model.parameters():
            if p.ndim == 2 and p.abs().sum() == 0:
                p.normal_(0, 0.3)
        model.blocks[2].attn.ve_lambda.copy_(torch.tensor([0.7, -0.2]))
    idx = torch.randint(0, 97, (2, 11))
    got = model(idx)
    want = _reference_forward(model, idx)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_loss_is_cross_entropy_of_logits():
    torch.manual_seed(2)
    model = GPT(preset("tiny"))
    idx = torch.randint(0, 2048, (2, 8))
    logits, loss = model(idx, idx)
    assert loss.item() == pytest.approx(math.log(2048), rel=1e-6)  # zero logits -> uniform
    assert logits.dtype == torch.float32


def test_context_overflow_is_refused():
    model = GPT(preset("tiny"))
    with pytest.raises(ValueError, match="exceeds the model context"):
        model(torch.zeros((1, 65), dtype=torch.long))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(n_embd=30, n_head=4)
    with pytest.raises(UngrokError, match="unknown model preset"):
        preset("nope")


def test_checkpoint_round_trip_and_corruption(tmp_path):
    torch.manual_seed(3)
    model = GPT(preset("tiny"))
    with torch.no_grad():
        model.lm_head.weight.normal_()
    save_checkpoint(model, tmp_path, 0)
    save_checkpoint(model, tmp_path, 25, extra={"loss": 1.5})
    cks = list_checkpoints(tmp_path)
    assert [c.step for c in cks] == [0, 25]
    loaded = load_checkpoint(cks[1])
    assert loaded.step == 25 and loaded.extra == {"loss": 1.5}
    idx = torch.randint(0, 2048, (1, 7))
    assert torch.equal(loaded.model(idx), model(idx))
    # a weights file damaged after writing is named and refused
    data = bytearray(cks[0].weights.read_bytes())
    data[-5] ^= 0xFF
    cks[0].weights.write_bytes(bytes(data))
    with pytest.raises(UngrokError, match="corrupt checkpoint"):
        load_checkpoint(cks[0])
    with pytest.raises(UngrokError, match="not found"):
        load_checkpoint(tmp_path / "model_000099.json")


def test_bf16_checkpoint_loads_upcast(tmp_path):
    torch.manual_seed(4)
    model = GPT(preset("tiny"))
    ck = save_checkpoint(model, tmp_path, 7, dtype="bfloat16")
    loaded = load_checkpoint(ck)
    w = loaded.model.wte.weight
    assert w.dtype == torch.float32
    assert torch.equal(w, model.wte.weight.bfloat16().float())
