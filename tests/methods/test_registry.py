from prada.methods.registry import METHODS, adversary_pairs


def test_adversary_pairs_differ_only_by_the_adversary():
    assert adversary_pairs() == [("prada", "ptune"), ("dann", "ft-cot")]
    for a, b in adversary_pairs():
        assert METHODS[a].adversary and not METHODS[b].adversary
