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


@pytest.mark.parametrize("chunk", [3, 512])
def test_dft_loss_and_gradients_match_autograd(chunk):
    """train.loss=dft: the chunked kernel gives autograd's value and gradients of mean(p.detach() x CE)."""
    from prada.train.lm_loss import linear_cross_entropy, token_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11)
    hidden = torch.randn(7, 8, requires_grad=True)
    labels = torch.randint(0, 11, (7,))
    ref_h = hidden.detach().clone().requires_grad_(True)
    ref = token_loss(head(ref_h), labels, dft=True)
    ref.backward()
    ref_grads = [ref_h.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]
    head.zero_grad()
    got = linear_cross_entropy(hidden, head, labels, chunk=chunk, dft=True)
    got.backward()
    assert torch.allclose(got, ref, atol=1e-6)
    for a, b in zip([hidden.grad, head.weight.grad, head.bias.grad], ref_grads):
        assert torch.allclose(a, b, atol=1e-6)
    plain = linear_cross_entropy(hidden.detach(), head, labels)
    assert got < plain  # every weight p < 1
    ce = torch.nn.functional.cross_entropy(head(hidden.detach()), labels, reduction="none")
    assert torch.allclose(got, (ce * torch.exp(-ce)).mean(), atol=1e-6)
