import random

from prada.distill.collate import GroupedBatches, TrainItem


def _items(n: int, seed: int = 0) -> list[TrainItem]:
    rng = random.Random(seed)
    return [TrainItem(list(range(rng.randint(5, 120))), [], 0) for _ in range(n)]


def _padded(items, batch, multiple=16):
    return len(batch) * -(-max(len(items[i].prompt_ids) for i in batch) // multiple) * multiple


def test_every_item_once_per_epoch_and_replayable():
    items = _items(101)
    a, b = GroupedBatches(items, 8, seed=3), GroupedBatches(items, 8, seed=3)
    assert a.per_epoch == 13
    for epoch in range(2):
        batches = [a[epoch * a.per_epoch + i] for i in range(a.per_epoch)]
        assert sorted(i for x in batches for i in x) == list(range(101))
        # a fresh object (a resumed run) gives the same batches from any step on
        assert [b[epoch * b.per_epoch + i] for i in reversed(range(b.per_epoch))] == batches[::-1]
    assert a[0] != a[a.per_epoch]  # epochs differ in order


def test_drop_last_keeps_full_batches_only():
    items = _items(101)
    g = GroupedBatches(items, 8, seed=0, drop_last=True)
    assert g.per_epoch == 12
    assert all(len(g[s]) == 8 for s in range(3 * g.per_epoch))
    few = GroupedBatches(items[:5], 8, seed=0, drop_last=True)  # fewer items than a batch: all of them
    assert sorted(few[0]) == list(range(5)) and sorted(few[7]) == list(range(5))


def test_grouped_batches_pad_less_than_random_ones():
    items = _items(512)
    g = GroupedBatches(items, 8, seed=0, drop_last=True)
    grouped = sum(_padded(items, g[s]) for s in range(g.per_epoch))
    rng = random.Random(0)
    order = rng.sample(range(512), 512)
    shuffled = sum(_padded(items, order[i : i + 8]) for i in range(0, 512, 8))
    real = sum(len(i.prompt_ids) for i in items)
    assert 1 - real / grouped < 0.15 < 1 - real / shuffled
