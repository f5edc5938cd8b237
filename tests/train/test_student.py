import torch

from prada.distill.collate import TrainItem, collate
from prada.train.student import build_student
from tiny import tiny_config


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
        plain = student.lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True).hidden_states[-1]
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
