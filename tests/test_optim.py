import torch

from cflearn.optim import LazyAdamW


def _pair(seed=0):
    torch.manual_seed(seed)
    w = torch.randn(6, 3)
    return torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())


def test_dense_path_matches_torch_adamw():
    a, b = _pair()
    opt_a = LazyAdamW([a], lr=0.1, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    opt_b = torch.optim.AdamW([b], lr=0.1, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    for step in range(5):
        g = torch.randn(6, 3, generator=torch.Generator().manual_seed(step))
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a, b)


def test_sparse_rows_update_like_dense_and_others_stay():
    emb_s = torch.nn.Embedding(6, 3, sparse=True)
    emb_d = torch.nn.Embedding(6, 3)
    emb_d.weight.data.copy_(emb_s.weight.data)
    before = emb_s.weight.detach().clone()
    opt_s = LazyAdamW(emb_s.parameters(), lr=0.1, weight_decay=0.1)
    opt_d = LazyAdamW(emb_d.parameters(), lr=0.1, weight_decay=0.1)
    idx = torch.tensor([1, 3, 3])  # row 3 twice: gradients add up
    for opt, emb in ((opt_s, emb_s), (opt_d, emb_d)):
        emb(idx).pow(2).sum().backward()
        opt.step()
    assert emb_s.weight.grad.is_sparse
    touched = [1, 3]
    torch.testing.assert_close(emb_s.weight[touched], emb_d.weight[touched])
    untouched = [0, 2, 4, 5]
    torch.testing.assert_close(emb_s.weight[untouched], before[untouched])  # lazy: no decay, no momentum
    assert not torch.equal(emb_d.weight[untouched], before[untouched])  # dense AdamW decays them


def test_invalid_settings():
    import pytest

    with pytest.raises(ValueError):
        LazyAdamW([torch.nn.Parameter(torch.zeros(1))], lr=-1)
