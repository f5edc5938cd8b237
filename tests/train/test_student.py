import pytest
import torch
from tiny import tiny_config

from prada.distill.collate import TrainItem, collate
from prada.train.student import build_student


def test_virtual_tokens_are_excluded_from_features(synth_dir):
    cfg = tiny_config(synth_dir, "method=prada", "prompt.num_virtual_tokens=5")
    student, tok = build_student(cfg, num_domains=3)
    student.eval()
    items = [TrainItem(tok("What is 2 + 2? ###")["input_ids"], [], 0), TrainItem(tok("Hi ###")["input_ids"], [], 1)]
    batch = collate(items, tok.pad_token_id, with_labels=False)
    hidden = student.hidden_states(batch)
    # positions line up with the real tokens: layer 0 is exactly the real tokens' embeddings
    assert hidden[0].shape[:2] == batch.input_ids.shape
    assert torch.allclose(hidden[0], student.lm.get_input_embeddings()(batch.input_ids))
    # and the prompt does reach the real tokens' deeper features (attention to the virtual tokens)
    with torch.no_grad():
        plain = student.lm(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True
        ).hidden_states[-1]
    assert not torch.allclose(hidden[-1], plain)


def test_question_features_do_not_depend_on_padding(synth_dir):
    from prada.methods.adversary import pool_question

    cfg = tiny_config(synth_dir, "method=prada")
    student, tok = build_student(cfg, num_domains=3)
    student.eval()
    q = TrainItem(tok("A coin is heads up. ###")["input_ids"], [], 0)
    long = TrainItem(tok("A much longer question that forces padding on the other row. ###")["input_ids"], [], 1)
    with torch.no_grad():
        alone = collate([q], tok.pad_token_id, with_labels=False)
        both = collate([q, long], tok.pad_token_id, pad_multiple=64, with_labels=False)
        f_alone = pool_question(student.hidden_states(alone)[-1], alone.question_mask)[0]
        f_both = pool_question(student.hidden_states(both)[-1], both.question_mask)[0]
    assert torch.allclose(f_alone, f_both, atol=1e-5)


def _prepended_losses(student, source, target, lam):
    """Reference: the virtual prompt prepended to every row (no shared prefix), as P-tuning is usually written."""
    from torch import nn

    from prada.methods.adversary import pool_question

    def hidden(batch):
        embeds, mask = student.embed(batch.input_ids, batch.attention_mask)
        out = student.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True)
        return [h[:, student.num_virtual_tokens :] for h in out.hidden_states]

    hs, ht = hidden(source), hidden(target)
    keep = source.labels[:, 1:] != -100
    logits = student.lm.get_output_embeddings()(hs[-1][:, :-1][keep])
    lm_loss = nn.functional.cross_entropy(logits, source.labels[:, 1:][keep])
    d_src, _ = student.adversary.loss(pool_question(hs[-1], source.question_mask), source.domain, lam)
    d_tgt, _ = student.adversary.loss(pool_question(ht[-1], target.question_mask), target.domain, lam)
    return lm_loss, d_src + d_tgt


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("switch", ["on", "off"])
def test_shared_prompt_prefix_equals_prompt_prepended_to_every_row(synth_dir, switch, device):
    """train.share_prompt_prefix on (the prompt's keys/values computed once and shared) and off (the prompt
    prepended to every row) give the same losses and gradients as the per-row reference, on every device."""
    cfg = tiny_config(synth_dir, "method=prada", "prompt.num_virtual_tokens=6", f"train.share_prompt_prefix={switch}")
    student, tok = build_student(cfg, num_domains=3)
    student.to(device).eval()  # no dropout: both computations must see the same function
    calls = []
    prompt_prefix = student.prompt_prefix
    student.prompt_prefix = lambda: calls.append(1) or prompt_prefix()
    src = [
        TrainItem(tok("Q: 2 + 3? ###")["input_ids"], tok(" 2 + 3 = 5 --> 5")["input_ids"], 0),
        TrainItem(tok("Q: a longer question about coins? ###")["input_ids"], tok(" heads --> yes")["input_ids"], 1),
    ]
    tgt = [TrainItem(tok("Which day is it? ###")["input_ids"], [], 2), TrainItem(tok("Hi ###")["input_ids"], [], 2)]
    source = collate(src, tok.pad_token_id).to(device)
    target = collate(tgt, tok.pad_token_id, with_labels=False).to(device)

    def grads(loss):
        student.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}

    shared, _ = student(source, target, lam=0.5)
    assert len(calls) == (switch == "on")  # the switch picks the path, whatever the device
    g_shared = grads(shared["lm_loss"] + shared["domain_loss"])
    lm_ref, dom_ref = _prepended_losses(student, source, target, lam=0.5)
    g_ref = grads(lm_ref + dom_ref)
    assert torch.allclose(shared["lm_loss"], lm_ref, atol=1e-5)
    assert torch.allclose(shared["domain_loss"], dom_ref, atol=1e-5)
    assert g_shared.keys() == g_ref.keys() and any("prompt" in n for n in g_ref)
    for name in g_ref:
        assert torch.allclose(g_shared[name], g_ref[name], atol=1e-5, rtol=1e-4), name
    with torch.no_grad():  # and hidden_states gives the same features down either path (GPUs take the per-row one)
        prefix = student.prompt_prefix()
        for per_row, shared_ in zip(student.hidden_states(source), student.hidden_states(source, prefix)):
            assert torch.allclose(per_row, shared_, atol=1e-5)


def test_layer_states_stop_at_the_adversary_layer_with_the_same_features_and_gradients(synth_dir):
    """The target pass's early exit: same states and gradients as the full pass, and the layers above are not run."""
    cfg = tiny_config(synth_dir, "method=prada", "prompt.num_virtual_tokens=4")
    student, tok = build_student(cfg, num_domains=3)
    student.eval()
    from prada.train.student import decoder_layers

    layers = decoder_layers(student.lm)
    assert layers is not None and len(layers) == 2
    items = [TrainItem(tok("Which day is it? ###")["input_ids"], [], 2), TrainItem(tok("Hi ###")["input_ids"], [], 1)]
    batch = collate(items, tok.pad_token_id, with_labels=False)
    student.hidden_states(batch)  # transformers adds its own output-recording hooks on first use
    hooks_before = [len(layer._forward_hooks) for layer in layers]
    calls = []
    counter = layers[-1].register_forward_hook(lambda *a: calls.append(1))
    params = [p for p in student.parameters() if p.requires_grad]
    for prefix_path in (False, True):
        for layer in (0, 1, 2, -1, -2, -3):
            prefix = student.prompt_prefix() if prefix_path else None
            full = student.hidden_states(batch, prefix)[layer]
            g_full = torch.autograd.grad(full.square().sum(), params, allow_unused=True)
            prefix = student.prompt_prefix() if prefix_path else None
            calls.clear()
            early = student.layer_states(batch, layer, prefix)
            ran_top = bool(calls)
            g_early = torch.autograd.grad(early.square().sum(), params, allow_unused=True)
            assert torch.allclose(early, full, atol=1e-6), (prefix_path, layer)
            for a, b in zip(g_full, g_early):
                assert (a is None and b is None) or (b is None and not a.any()) or torch.allclose(a, b, atol=1e-6), (
                    prefix_path,
                    layer,
                )
            assert ran_top == (layer % 3 == 2), (prefix_path, layer)  # only the top state needs the last layer
    counter.remove()
    assert [len(layer._forward_hooks) for layer in layers] == hooks_before  # the stop hooks are gone


def test_an_adversary_layer_the_model_does_not_have_is_a_clear_error(synth_dir):
    import pytest

    from prada.errors import PradaError

    cfg = tiny_config(synth_dir, "method=prada", "adversary.layer=3")  # tiny-random: 2 layers, states 0..2
    with pytest.raises(PradaError, match=r"adversary.layer=3: .* 2 decoder layers, so its hidden states are 0..2"):
        build_student(cfg, num_domains=3)
    for ok in (2, -3):
        build_student(tiny_config(synth_dir, "method=prada", f"adversary.layer={ok}"), num_domains=3)


@pytest.mark.parametrize("method", ["ft-cot", "prada"])
def test_freeze_embeddings_drops_only_the_embedding_gradient(synth_dir, method):
    """train.freeze_embeddings: the same losses and the same gradients for every other weight, none for the
    embedding table / LM head, and the optimizer no longer holds them (the work it saves)."""
    items_text = [
        ("Q: 2 + 3? ###", " 2 + 3 = 5 --> 5", 0),
        ("Q: a longer question about coins? ###", " heads --> yes", 1),
    ]
    runs = {}
    for frozen in (False, True):
        cfg = tiny_config(synth_dir, f"method={method}", f"train.freeze_embeddings={str(frozen).lower()}")
        student, tok = build_student(cfg, num_domains=3)
        student.eval()
        src = collate(
            [TrainItem(tok(q)["input_ids"], tok(t)["input_ids"], d) for q, t, d in items_text], tok.pad_token_id
        )
        target = collate(
            [TrainItem(tok("Which day is it? ###")["input_ids"], [], 2)], tok.pad_token_id, with_labels=False
        )
        losses, _ = student(src, target if student.wants_target else None, lam=0.5)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}
        optimized = {id(p) for g in student.param_groups(cfg) for p in g["params"]}
        runs[frozen] = (losses, grads, optimized, student)
    (loss_on, g_on, opt_on, s_on), (loss_off, g_off, opt_off, _) = runs[True], runs[False]
    table = s_on.lm.get_input_embeddings().weight
    assert not table.requires_grad and id(table) not in opt_on
    assert len(opt_on) == len(opt_off) - 1  # tied: one matrix fewer to update (the tiny model ties like SmolLM2)
    frozen_names = {n for n in g_off if n not in g_on}
    assert frozen_names and all("embed" in n or "lm_head" in n for n in frozen_names)
    for k in loss_off:
        assert torch.allclose(loss_on[k], loss_off[k]), k
    for n in g_on:
        assert torch.allclose(g_on[n], g_off[n], atol=1e-6), n


@pytest.mark.parametrize("method", ["ft-cot", "prada"])
def test_bf16_autocast_stays_within_a_stated_tolerance_of_fp32(synth_dir, method):
    """train.precision=bf16 changes the arithmetic (bf16 matrix products, fp32 weights and losses), so it is
    held to a tolerance, not equality: every loss within 2% of fp32's and the whole gradient within 0.99
    cosine of it; and it is not fp32 in disguise (the losses differ)."""
    items_text = [
        ("Q: 2 + 3? ###", " 2 + 3 = 5 --> 5", 0),
        ("Q: a longer question about coins? ###", " heads --> yes", 1),
    ]
    runs = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        student, tok = build_student(tiny_config(synth_dir, f"method={method}"), num_domains=3)
        student.eval()
        src = collate(
            [TrainItem(tok(q)["input_ids"], tok(t)["input_ids"], d) for q, t, d in items_text], tok.pad_token_id
        )
        target = collate(
            [TrainItem(tok("Which day is it? ###")["input_ids"], [], 2)], tok.pad_token_id, with_labels=False
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses, _ = student(src, target if student.wants_target else None, lam=0.5)
        sum(losses.values()).backward()
        grads = torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None])
        runs[bf16] = ({k: v.item() for k, v in losses.items()}, grads)
    (loss32, grad32), (loss16, grad16) = runs[False], runs[True]
    assert grad16.dtype == torch.float32 and grad16.shape == grad32.shape
    for k in loss32:
        assert abs(loss16[k] - loss32[k]) <= 0.02 * abs(loss32[k]), (k, loss16[k], loss32[k])
    assert any(loss16[k] != loss32[k] for k in loss32)
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) >= 0.99
