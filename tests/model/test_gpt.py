import math

import pytest
import torch
import torch.nn.functional as F

from ungrok.errors import UngrokError
from ungrok.model import GPT, ModelConfig, list_checkpoints, load_checkpoint, preset, save_checkpoint
from ungrok.model.gpt import HookPoint, _norm, _rotate
from ungrok.model.loss import softcap_cross_entropy


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


def _reference_forward(model: GPT, idx: torch.Tensor, sites: dict | None = None) -> torch.Tensor:
    """The architecture written out step by step with explicit loops over heads; `sites` (if
    given) receives what each hook site should hold, keyed by the site's module name."""
    sites = {} if sites is None else sites
    cfg = model.config
    B, T = idx.shape
    hd = cfg.head_dim

    def rms(x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + torch.finfo(x.dtype).eps)

    pos = torch.arange(T, dtype=torch.float32)
    inv = 1.0 / (cfg.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None] * inv[None, :]
    x = sites["hook_embed"] = rms(model.wte.weight[idx])
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
        sites[f"blocks.{i}.attn.hook_heads"] = torch.stack(heads, 2)
        out = sites[f"blocks.{i}.hook_attn_out"] = torch.cat(heads, -1) @ a.wo.weight.T
        x = x + out
        m = sites[f"blocks.{i}.hook_mlp_out"] = (F.relu(rms(x) @ blk.mlp.up.weight.T) ** 2) @ blk.mlp.down.weight.T
        x = sites[f"blocks.{i}.hook_resid_post"] = x + m
    sites["hook_final"] = rms(x)
    logits = rms(x) @ model.lm_head.weight.T
    return 15 * torch.tanh(logits / 15)


def _weighted_model(seed: int = 1) -> GPT:
    """A small model whose zero-initialised projections have weight (so every site carries signal)."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=97, n_layer=3, n_head=2, n_embd=32, context=16))
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2 and p.abs().sum() == 0:
                p.normal_(0, 0.3)
        model.blocks[2].attn.ve_lambda.copy_(torch.tensor([0.7, -0.2]))
    return model


def test_forward_matches_a_step_by_step_reference():
    model = _weighted_model()
    idx = torch.randint(0, 97, (2, 11))
    got = model(idx)
    want = _reference_forward(model, idx)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


@pytest.mark.parametrize("bf16", [False, True])
def test_the_in_place_cap_under_no_grad_gives_the_same_bits(bf16):
    """Scoring caps the logits mostly in place (no autograd to keep); it must be the graph path's arithmetic."""
    model = _weighted_model()
    idx = torch.randint(0, 97, (3, 9))
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        graph = model(idx)
        with torch.no_grad():
            scored = model(idx)
    assert graph.requires_grad and not scored.requires_grad
    assert torch.equal(graph.detach(), scored)
    assert scored.abs().max() < model.config.softcap and scored.abs().max() > 1.0


def test_the_no_grad_cap_leaves_the_heads_output_to_its_hooks():
    """mech/trace.py records lm_head's output (the raw logits) with a hook: the cap must not overwrite it."""
    model = _weighted_model()
    seen = []
    handle = model.lm_head.register_forward_hook(lambda _m, _a, out: seen.append(out))
    with torch.no_grad():
        capped = model(torch.randint(0, 97, (2, 7)))
    handle.remove()
    raw = seen[0]
    assert not torch.equal(raw, capped) and raw.abs().max() > capped.abs().max()
    assert torch.equal(15 * torch.tanh(raw / 15), capped)


def _record_sites(model: GPT, run):  # noqa: ANN001, ANN202
    """What every HookPoint held during run(), by module name (read-only forward hooks, removed after)."""
    seen = {}
    handles = [m.register_forward_hook(lambda _m, _a, out, n=n: seen.__setitem__(n, out))
               for n, m in model.named_modules() if isinstance(m, HookPoint)]
    try:
        out = run()
    finally:
        for h in handles:
            h.remove()
    return out, seen


def test_every_hook_site_holds_what_the_reference_computes():
    model = _weighted_model()
    idx = torch.randint(0, 97, (2, 11))
    want: dict = {}
    _reference_forward(model, idx, want)
    logits, got = _record_sites(model, lambda: model(idx))
    assert set(got) == set(want) and len(got) == 2 + 4 * model.config.n_layer
    for name, ref in want.items():
        assert got[name].shape == ref.shape, name
        assert torch.allclose(got[name], ref, atol=1e-4), (name, (got[name] - ref).abs().max())


def test_the_final_site_is_what_the_head_consumes_in_both_paths():
    model = _weighted_model()
    idx = torch.randint(0, 97, (2, 11))
    fed = {}
    handle = model.lm_head.register_forward_pre_hook(lambda _m, args: fed.setdefault("h", args[0]))
    try:
        logits, got = _record_sites(model, lambda: model(idx))
    finally:
        handle.remove()
    assert torch.equal(got["hook_final"], fed["h"])
    assert torch.equal(got["hook_final"], F.rms_norm(got["blocks.2.hook_resid_post"], (32,)))
    (_, loss), got = _record_sites(model, lambda: model(idx, idx))  # training: the hand-written head
    h = got["hook_final"]
    assert torch.equal(loss, softcap_cross_entropy(h.reshape(-1, 32), model.lm_head.weight, idx.reshape(-1), 15.0)[0])


def _forward_without_sites(model: GPT, idx: torch.Tensor, targets: torch.Tensor | None = None):  # noqa: ANN202
    """GPT.forward as it was before the hook sites (issue 16), op for op on the same modules."""
    cfg = model.config
    B, T = idx.shape
    shape = (B, T, cfg.n_head, cfg.head_dim)
    cos, sin = model.cos[:, :T], model.sin[:, :T]
    x = _norm(model.wte(idx))
    for i, block in enumerate(model.blocks):
        at, h = block.attn, _norm(x)
        q, k, v = at.wq(h).view(shape), at.wk(h).view(shape), at.wv(h).view(shape)
        if at.ve_lambda is not None:
            v = at.ve_lambda[0] * v + at.ve_lambda[1] * model.value_embeds[str(i)](idx).view(shape)
        q, k = _norm(_rotate(q, cos, sin)), _norm(_rotate(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + at.wo(y.transpose(1, 2).reshape(B, T, -1))
        x = x + block.mlp(_norm(x))
    h, cap = _norm(x), cfg.softcap
    if targets is None:
        return cap * torch.tanh(model.lm_head(h).float() / cap)
    loss, logits = softcap_cross_entropy(h.reshape(-1, h.size(-1)), model.lm_head.weight, targets.reshape(-1), cap)
    return logits.view(*h.shape[:-1], -1), loss


@pytest.mark.parametrize("bf16", [False, True])
def test_hook_sites_change_no_bit_of_logits_loss_or_gradients(bf16):
    """With no hook attached the sites are identities: the forward, loss and a training step's
    gradients equal the site-free forward bit for bit (fp32, and CPU bf16 autocast)."""
    model = _weighted_model(seed=5)
    idx = torch.randint(0, 97, (3, 13))

    def step(forward):  # noqa: ANN001, ANN202
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, loss = forward(idx, idx)
            plain = forward(idx)
        loss.backward()
        return logits, loss, plain, {n: p.grad.clone() for n, p in model.named_parameters()}

    new, old = step(model), step(lambda i, t=None: _forward_without_sites(model, i, t))
    for a, b in zip(new[:3], old[:3], strict=True):
        assert torch.equal(a, b)
    assert new[3].keys() == old[3].keys()
    assert all(torch.equal(new[3][n], old[3][n]) for n in new[3])
    assert not any("hook" in k for k in model.state_dict())  # checkpoints are unchanged too


def test_compile_traces_through_the_hook_sites():
    model = _weighted_model(seed=6)
    idx = torch.randint(0, 97, (2, 9))
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    assert torch.equal(compiled(idx), model(idx))
    assert torch.equal(compiled(idx, idx)[1], model(idx, idx)[1])


def test_positions_run_the_head_at_those_places_only():
    """A scorer's read: the head sees just the asked-for (row, position) pairs, and their logits are
    the full forward's at those places."""
    model = _weighted_model(seed=4)
    idx = torch.randint(0, 97, (3, 8))
    at = torch.tensor([[0, 7], [2, 0], [1, 3], [2, 5]])
    rows = []
    handle = model.lm_head.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape))
    with torch.no_grad():
        full, read = model(idx), model(idx, positions=at)
    handle.remove()
    assert rows == [(3, 8, model.config.n_embd), (4, model.config.n_embd)]
    assert torch.allclose(read, full[at[:, 0], at[:, 1]], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="positions"):
        model(idx, idx, positions=at)


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


@pytest.mark.parametrize(("core_fp32", "dtype"), [(True, torch.float32), (False, torch.bfloat16)])
def test_cpu_bf16_attention_core_follows_its_switch(core_fp32, dtype):
    """Under CPU bf16 autocast the attention core runs in fp32 unless switched off (train.cpu_attention):
    the per-head outputs the core hands to W_O carry its dtype."""
    model = _weighted_model(seed=7)
    for m in model.modules():
        if hasattr(m, "cpu_core_fp32"):
            m.cpu_core_fp32 = core_fp32
    seen: list[torch.dtype] = []
    model.blocks[0].attn.hook_heads.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randint(0, 97, (2, 9)))
    assert seen == [dtype]
