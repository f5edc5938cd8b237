import math

import torch

from prada.methods.adversary import Adversary, pool_question, reverse_gradient
from prada.methods.schedule import grl_lambda


def test_reversal_flips_and_scales_the_gradient():
    torch.manual_seed(0)
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(8, 3)
    (x @ w).pow(2).sum().backward()
    plain = x.grad.clone()
    x.grad = None
    (reverse_gradient(x, 0.37) @ w).pow(2).sum().backward()
    assert torch.allclose(x.grad, -0.37 * plain, atol=1e-6)


def test_domain_gradient_reaching_backbone_is_minus_lambda_times_plain():
    """Through the head: the backbone-side gradient of the domain loss is -lambda x the un-reversed one."""
    torch.manual_seed(0)
    adv = Adversary(hidden_size=8, num_domains=3, head_hidden=16, layer=-1).eval()
    feats = torch.randn(5, 8, requires_grad=True)
    domains = torch.tensor([0, 1, 2, 0, 1])
    loss, _ = adv.loss(feats, domains, lam=0.0)
    plain = torch.autograd.grad(torch.nn.functional.cross_entropy(adv.head(feats), domains), feats)[0]
    loss, _ = adv.loss(feats, domains, lam=0.5)
    reversed_ = torch.autograd.grad(loss, feats)[0]
    assert torch.allclose(reversed_, -0.5 * plain, atol=1e-6)
    # the head itself still descends its own loss (gradient not reversed for head parameters)
    loss, _ = adv.loss(feats.detach(), domains, lam=0.5)
    g_rev = torch.autograd.grad(loss, list(adv.head.parameters()))
    loss0 = torch.nn.functional.cross_entropy(adv.head(feats.detach()), domains)
    g_plain = torch.autograd.grad(loss0, list(adv.head.parameters()))
    assert all(torch.allclose(a, b) for a, b in zip(g_rev, g_plain))


def test_pooling_ignores_padding_and_targets():
    h = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    pooled = pool_question(h, mask)
    assert torch.allclose(pooled[0], h[0, :2].mean(0))
    assert torch.allclose(pooled[1], h[1, :3].mean(0))
    h2 = h.clone()
    h2[0, 2:] = 1e6  # padding / target positions change: pooled features do not
    assert torch.allclose(pool_question(h2, mask), pooled)


def test_dann_schedule():
    assert grl_lambda(0.0, 1.0) == 0.0
    assert math.isclose(grl_lambda(1.0, 0.5), 0.5 * (2 / (1 + math.exp(-10)) - 1))
    assert grl_lambda(0.3, 0.2, schedule="constant") == 0.2
    values = [grl_lambda(p / 10, 1.0) for p in range(11)]
    assert values == sorted(values)


def test_the_domain_head_and_its_reversed_gradient_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    adversary = Adversary(hidden_size=16, num_domains=2, head_hidden=8, layer=-1)
    adversary.eval()  # no dropout: the two passes must see the same head
    features = torch.randn(6, 16)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])

    def run(autocast: bool):
        x = features.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = adversary.head(reverse_gradient(x, 0.5))
            loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        return logits, x.grad

    logits_fp32, grad_fp32 = run(autocast=False)
    logits_bf16, grad_bf16 = run(autocast=True)
    assert logits_bf16.dtype == grad_bf16.dtype == torch.float32
    assert torch.equal(logits_bf16, logits_fp32) and torch.equal(grad_bf16, grad_fp32)
