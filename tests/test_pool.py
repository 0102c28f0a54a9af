import torch

from maskcycle.models.pool import ImagePool


def _img(v: float) -> torch.Tensor:
    return torch.full((1, 1, 1, 1), v)


def test_pool_fills_then_returns_new_images():
    pool = ImagePool(3, seed=0)
    outs = [pool.query(_img(i)).item() for i in range(3)]
    assert outs == [0, 1, 2] and len(pool.images) == 3


def test_pool_swaps_with_probability_half_and_keeps_its_size():
    pool = ImagePool(4, seed=1)
    for i in range(4):
        pool.query(_img(i))
    swapped = 0
    n = 2000
    for i in range(4, 4 + n):
        out = pool.query(_img(i)).item()
        if out != i:
            swapped += 1
            assert out < i  # a stored, earlier image
        assert len(pool.images) == 4
    assert 0.45 < swapped / n < 0.55


def test_pool_is_seeded_and_resumable():
    a, b = ImagePool(2, seed=7), ImagePool(2, seed=7)
    seq = torch.arange(20.0).view(20, 1, 1, 1)
    out_a = [a.query(x.unsqueeze(0)).item() for x in seq[:10]]
    state = a.state_dict()
    c = ImagePool(2, seed=99)
    c.load_state_dict(state)
    rest_a = [a.query(x.unsqueeze(0)).item() for x in seq[10:]]
    rest_c = [c.query(x.unsqueeze(0)).item() for x in seq[10:]]
    out_b = [b.query(x.unsqueeze(0)).item() for x in seq]
    assert out_a + rest_a == out_b and rest_c == rest_a


def test_pool_size_zero_passes_through_and_batches_work():
    assert torch.equal(ImagePool(0).query(torch.ones(3, 1, 2, 2)), torch.ones(3, 1, 2, 2))
    assert ImagePool(5).query(torch.randn(3, 1, 2, 2)).shape == (3, 1, 2, 2)
