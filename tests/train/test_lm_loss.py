import pytest
import torch
from torch import nn

from prada.train.lm_loss import linear_cross_entropy


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("chunk", [4, 7, 64])
def test_chunked_matches_plain_cross_entropy(bias, chunk):
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=bias)
    hidden = torch.randn(23, 16, requires_grad=True)
    labels = torch.randint(0, 50, (23,))
    ours = linear_cross_entropy(hidden, head, labels, chunk=chunk)
    ref = nn.functional.cross_entropy(head(hidden), labels)
    assert torch.allclose(ours, ref, atol=1e-6)
    params = [hidden, *head.parameters()]
    for g_ours, g_ref in zip(_grads(3.0 * ours, params), _grads(3.0 * ref, params)):  # upstream scale is applied
        assert torch.allclose(g_ours, g_ref, atol=1e-6)


def test_frozen_head_and_no_grad():
    torch.manual_seed(0)
    head = nn.Linear(8, 30, bias=False).requires_grad_(False)
    hidden = torch.randn(10, 8, requires_grad=True)
    labels = torch.randint(0, 30, (10,))
    (g,) = _grads(linear_cross_entropy(hidden, head, labels, chunk=3), [hidden])
    (g_ref,) = _grads(nn.functional.cross_entropy(head(hidden), labels), [hidden])
    assert torch.allclose(g, g_ref, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(
            linear_cross_entropy(hidden, head, labels), nn.functional.cross_entropy(head(hidden), labels)
        )


def test_tied_embedding_gets_both_gradients():
    """SmolLM2 ties the head to the input embedding: the weight's gradient is the sum of both uses."""
    torch.manual_seed(0)
    emb = nn.Embedding(40, 8)
    head = nn.Linear(8, 40, bias=False)
    head.weight = emb.weight
    ids, labels = torch.randint(0, 40, (12,)), torch.randint(0, 40, (12,))
    (g,) = _grads(linear_cross_entropy(torch.tanh(emb(ids)), head, labels, chunk=5), [emb.weight])
    (g_ref,) = _grads(nn.functional.cross_entropy(head(torch.tanh(emb(ids))), labels), [emb.weight])
    assert torch.allclose(g, g_ref, atol=1e-6)


def test_other_heads_fall_back_to_plain():
    head = nn.Sequential(nn.Linear(8, 20))
    hidden, labels = torch.randn(5, 8), torch.randint(0, 20, (5,))
    assert torch.allclose(linear_cross_entropy(hidden, head, labels), nn.functional.cross_entropy(head(hidden), labels))


def test_bf16_autocast_keeps_fp32_gradients():
    torch.manual_seed(0)
    head = nn.Linear(16, 50, bias=True)
    hidden = torch.randn(9, 16, requires_grad=True)
    labels = torch.randint(0, 50, (9,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(hidden, head, labels, chunk=4)
    ref = nn.functional.cross_entropy(head(hidden), labels)
    assert ours.dtype == torch.float32 and abs(ours.item() - ref.item()) < 0.05
    grads = _grads(ours, [hidden, head.weight, head.bias])
    assert [g.dtype for g in grads] == [torch.float32] * 3
    for g, g_ref in zip(grads, _grads(ref, [hidden, head.weight, head.bias])):
        assert torch.allclose(g, g_ref, atol=0.02)
