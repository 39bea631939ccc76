"""The GPT: exact parameter counts, nanoGPT semantics, KV-cache generation."""

import pytest
import torch

from finegpt.config import ModelConfig
from finegpt.model import GPT, count_params, param_breakdown

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)


@pytest.mark.parametrize("bias,full,nanogpt", [(True, 124_475_904, 123_689_472), (False, 124_373_760, 123_587_328)])
def test_gpt2_small_parameter_counts(bias, full, nanogpt):
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=bias)
    assert count_params(cfg, non_embedding=False) == full
    assert count_params(cfg) == nanogpt


@pytest.mark.parametrize("bias", [True, False])
def test_breakdown_matches_the_tensors(bias):
    cfg = ModelConfig(n_layer=3, n_head=4, n_embd=64, block_size=32, vocab_size=100, bias=bias)
    model = GPT(cfg)
    parts = param_breakdown(cfg)
    by_name = {"token_embedding": 0, "position_embedding": 0, "attention": 0, "mlp": 0, "layernorm": 0}
    for name, p in model.named_parameters():  # the tied lm_head is listed once, as wte
        key = (
            "token_embedding"
            if "wte" in name
            else "position_embedding"
            if "wpe" in name
            else "attention"
            if ".attn." in name
            else "mlp"
            if ".mlp." in name
            else "layernorm"
        )
        by_name[key] += p.numel()
    assert by_name == {k: v for k, v in parts.items() if k in by_name}
    assert model.get_num_params() == count_params(cfg)
    assert model.get_num_params(non_embedding=False) == count_params(cfg, non_embedding=False)


def test_lm_head_is_tied_and_residual_projections_are_scaled():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=8, n_head=4, n_embd=128, block_size=32, vocab_size=256)
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    std = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / (2 * 8) ** 0.5) < 0.001


def test_flash_and_math_attention_agree():
    torch.manual_seed(0)
    flash, math_ = GPT(TINY, attention="flash"), GPT(TINY, attention="math")
    math_.load_state_dict(flash.state_dict())
    x = torch.randint(0, 64, (3, 16))
    torch.testing.assert_close(flash(x, x)[1], math_(x, x)[1])


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = GPT(TINY)
    x = torch.randint(0, 64, (2, 16))
    model(x, x)[1].backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    model.activation_checkpointing = True
    model(x, x)[1].backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_too_long_input_names_block_size():
    with pytest.raises(ValueError, match="block_size=16"):
        GPT(TINY)(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("new_tokens", [5, 40])  # 40 runs past block_size=16
def test_kv_cache_matches_full_recompute_greedy(new_tokens):
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.randint(0, 64, (2, 3))
    cached = model.generate(prompt, new_tokens, temperature=0, use_cache=True)
    full = model.generate(prompt, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (2, 3 + new_tokens)
    assert torch.equal(cached, full)


def test_kv_cache_logits_match_full_forward():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    x = torch.randint(0, 64, (2, 12))
    full, _ = model(x)
    caches = model.new_caches(2, "cpu", torch.float32)
    first, _ = model(x[:, :7], caches=caches)
    chunk, _ = model(x[:, 7:10], caches=caches)  # a chunk after a prefix uses an explicit mask
    step, _ = model(x[:, 10:11], caches=caches)
    torch.testing.assert_close(torch.cat([first, chunk, step], dim=1), full[:, :11])


def test_seeded_sampling_is_reproducible_and_top_k_1_is_greedy():
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    prompt = torch.randint(0, 64, (1, 4))
    runs = [
        model.generate(prompt, 20, temperature=0.9, top_k=8, top_p=0.9, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(*runs)
    greedy = model.generate(prompt, 20, temperature=0)
    assert torch.equal(model.generate(prompt, 20, temperature=1.0, top_k=1), greedy)


def test_generation_never_uses_cudnn_attention(monkeypatch):
    """cuDNN's SDPA plans anew for every sequence length, which decoding changes at every token (17x slower
    in bf16 on an H200): generate runs with the other kernels only, and still gives the same tokens."""
    import finegpt.model as model_module

    seen = []
    original = model_module.sdpa_kernel

    def spy(backends):
        seen.append(list(backends))
        return original(backends)

    monkeypatch.setattr(model_module, "sdpa_kernel", spy)
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)).eval()
    idx = torch.tensor([[3, 5]])
    cached = model.generate(idx, 20, temperature=0, use_cache=True)
    full = model.generate(idx, 20, temperature=0, use_cache=False)
    assert torch.equal(cached, full)
    assert len(seen) == 2 and all(torch.nn.attention.SDPBackend.CUDNN_ATTENTION not in b for b in seen)
