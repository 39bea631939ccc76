"""Generated text is safe to print: control characters shown as \\x1b, bad UTF-8 as U+FFFD; --raw keeps
the exact bytes for piping."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data

from finegpt.cli import main
from finegpt.config import ModelConfig, TrainConfig
from finegpt.data import get_tokenizer
from finegpt.model import GPT
from finegpt.sample import generate_text, generate_tokens, printable

NOISY = dict(prompt="To be", max_new_tokens=200, temperature=2.0, top_k=0, seed=5)  # an untrained model's bytes


def control_bytes(data: bytes) -> list[int]:
    return [b for b in data if b < 0x20 and b not in b"\n\t"]


def test_printable_writes_out_control_characters_but_newline_and_tab():
    text = "a\x1b[31mred\x00\r\n\tb\x7f\x85é\ufffd<|endoftext|>"
    assert printable(text) == "a\\x1b[31mred\\x00\\x0d\n\tb\\x7f\\x85é\ufffd<|endoftext|>"
    assert printable("plain text\n") == "plain text\n"


def test_bytes_tokenizer_decode_bytes_is_exact_and_decode_replaces_bad_utf8():
    tok = get_tokenizer("bytes")
    ids = [72, 0, 27, 0xC3, 0xA9, 0xE2, tok.eot, 0x80, 300]  # NUL, ESC, é, a half character, EOT, a stray byte, padding
    assert tok.decode_bytes(ids) == b"H\x00\x1b\xc3\xa9\xe2<|endoftext|>\x80\xff"
    assert tok.decode(ids) == "H\x00\x1bé\ufffd<|endoftext|>\ufffd\ufffd"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=320)).eval()


def test_generated_text_shows_control_bytes_visibly_and_raw_keeps_them(model):
    tok = get_tokenizer("bytes")
    raw = generate_text(model, tok, **NOISY, raw=True)[0]
    shown = generate_text(model, tok, **NOISY)[0]
    assert control_bytes(raw.encode()) and "\ufffd" in raw  # the noise really holds ESC-like bytes
    assert control_bytes(shown.encode()) == [] and shown == printable(raw)
    ids = generate_tokens(model, tok, **NOISY)[0]
    assert tok.decode(ids) == raw and tok.decode_bytes(ids).startswith(b"To be")


def test_cli_sample_escapes_for_the_terminal_and_raw_writes_the_exact_bytes(tmp_path, capsysbinary):
    from finegpt.train import train

    data_dir = make_data(tmp_path / "data", n_train=4_000, n_val=1_000)
    settings = {**TINY_TRAIN, "max_iters": 1, "eval_interval": 1}
    train(ModelConfig(**TINY_MODEL), TrainConfig(**settings, data_dir=str(data_dir), out_dir=str(tmp_path / "out")))
    capsysbinary.readouterr()
    args = ["sample", "--ckpt", str(tmp_path / "out"), "--prompt", "To be", "--max_new_tokens", "200"]
    args += ["--temperature", "2.0", "--top_k", "0", "--seed", "5", "--device", "cpu"]
    assert main(args) == 0
    shown = capsysbinary.readouterr().out
    assert shown.startswith(b"===== ") and control_bytes(shown) == []
    assert main(args + ["--raw"]) == 0
    raw = capsysbinary.readouterr().out

    from finegpt.sample import load_for_sampling

    trained, tok, _ = load_for_sampling(str(tmp_path / "out"), device="cpu")
    ids = generate_tokens(trained, tok, "To be", 200, 2.0, 0, None, 5)[0]
    assert raw == tok.decode_bytes(ids) and control_bytes(raw)
    assert printable(tok.decode(ids)).encode() in shown
