"""attndilute.cka against brute force (explicit loops, float64), closed forms and invariants."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attndilute.cka import MinibatchCKA, gram, hsic1, linear_cka

F64 = torch.float64


# ---------------------------------------------------------------- independent references
def hsic1_loops(K: torch.Tensor, L: torch.Tensor) -> float:
    """Eq. 10 written with explicit loops over samples (float64)."""
    n = K.shape[0]
    k = [[0.0 if i == j else float(K[i, j]) for j in range(n)] for i in range(n)]
    l = [[0.0 if i == j else float(L[i, j]) for j in range(n)] for i in range(n)]
    trace = sum(k[i][j] * l[j][i] for i in range(n) for j in range(n))
    sum_k = sum(k[i][j] for i in range(n) for j in range(n))
    sum_l = sum(l[i][j] for i in range(n) for j in range(n))
    kl1 = sum(k[i][j] * l[j][q] for i in range(n) for j in range(n) for q in range(n))
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1) / (n * (n - 3))


def hsic1_ustatistic(K: torch.Tensor, L: torch.Tensor) -> float:
    """Song et al. (2012) Theorem 2: the U-statistic over ordered distinct quadruples."""
    n = K.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += float(K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q])
        count += 1
    return total / count


def hsic0_loops(K: torch.Tensor, L: torch.Tensor) -> float:
    """Biased HSIC_0 = tr(K H L H) / (n-1)^2 with explicit centring loops."""
    n = K.shape[0]
    h = [[(1.0 if i == j else 0.0) - 1.0 / n for j in range(n)] for i in range(n)]

    def centre(M):
        hm = [[sum(h[i][a] * float(M[a, j]) for a in range(n)) for j in range(n)] for i in range(n)]
        return [[sum(hm[i][a] * h[a][j] for a in range(n)) for j in range(n)] for i in range(n)]

    kc, lc = centre(K), centre(L)
    return sum(kc[i][j] * lc[j][i] for i in range(n) for j in range(n)) / (n - 1) ** 2


def minibatch_cka_loops(batches_a, batches_b) -> torch.Tensor:
    """Eq. 9 with the loop HSIC: per batch, per layer pair."""
    la, lb = len(batches_a[0]), len(batches_b[0])
    a = torch.zeros(la, lb, dtype=F64)
    b = torch.zeros(la, dtype=F64)
    c = torch.zeros(lb, dtype=F64)
    for acts_a, acts_b in zip(batches_a, batches_b, strict=True):
        ka = [x.reshape(x.shape[0], -1).double() @ x.reshape(x.shape[0], -1).double().T for x in acts_a]
        kb = [y.reshape(y.shape[0], -1).double() @ y.reshape(y.shape[0], -1).double().T for y in acts_b]
        for i in range(la):
            b[i] += hsic1_loops(ka[i], ka[i])
            for j in range(lb):
                a[i, j] += hsic1_loops(ka[i], kb[j])
        for j in range(lb):
            c[j] += hsic1_loops(kb[j], kb[j])
    k = len(batches_a)
    return (a / k) / torch.sqrt(torch.outer(b / k, c / k))


def _rand(seed: int, *shape: int, dtype=F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- hsic1
def test_hsic1_matches_loops_and_ustatistic():
    x, y = _rand(0, 7, 5), _rand(1, 7, 3) + 2.0
    K, L = x @ x.T, y @ y.T
    ours = float(hsic1(K, L))
    assert ours == pytest.approx(hsic1_loops(K, L), rel=1e-12, abs=1e-12)
    assert ours == pytest.approx(hsic1_ustatistic(K, L), rel=1e-10, abs=1e-12)


def test_hsic1_zeroes_the_diagonal_itself():
    x, y = _rand(2, 6, 4), _rand(3, 6, 4)
    K, L = x @ x.T, y @ y.T
    K2, L2 = K + torch.diag(_rand(4, 6)), L + 5 * torch.eye(6, dtype=F64)
    assert float(hsic1(K2, L2)) == pytest.approx(float(hsic1(K, L)), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_hsic1_rejects_n_at_most_3(n):
    K = torch.eye(n, dtype=F64)
    with pytest.raises(ValueError, match="n > 3"):
        hsic1(K, K)


def test_hsic1_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        hsic1(torch.zeros(5, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="same shape"):
        hsic1(torch.zeros(5, 5), torch.zeros(6, 6))
    with pytest.raises(ValueError, match="square"):
        hsic1(torch.zeros(2, 5, 5), torch.zeros(2, 5, 5))


def test_hsic1_invariant_to_feature_translation():
    x, y = _rand(5, 9, 4), _rand(6, 9, 6)
    shifted = x + 30.0 * _rand(7, 1, 4)
    expected = float(hsic1(x @ x.T, y @ y.T))
    assert float(hsic1(shifted @ shifted.T, y @ y.T)) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- gram
@pytest.mark.parametrize("d", [3, 64, 100, 257])
def test_gram_chunked_matches_float64_and_zeroes_diagonal(d):
    x = _rand(8, 6, d, dtype=torch.float32) + 1.0
    expected = x.double() @ x.double().T
    expected.fill_diagonal_(0.0)
    got = gram(x, chunk=64)
    assert got.dtype == F64
    assert torch.all(torch.diagonal(got) == 0)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)


def test_gram_flattens_per_sample_and_upcasts_half():
    x = _rand(9, 5, 3, 4, 2, dtype=torch.float32).half()
    flat = x.float().reshape(5, -1).double()
    expected = (flat @ flat.T).fill_diagonal_(0.0)
    torch.testing.assert_close(gram(x), expected, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- linear_cka
@pytest.mark.parametrize("dx,dy", [(2, 3), (40, 30)])  # feature-space and Gram-space branches
def test_linear_cka_biased_matches_hsic0_loops(dx, dy):
    x, y = _rand(10, 6, dx), _rand(11, 6, dy)
    y = y + x[:, :1]  # some shared signal
    K, L = x @ x.T, y @ y.T
    expected = hsic0_loops(K, L) / (hsic0_loops(K, K) * hsic0_loops(L, L)) ** 0.5
    assert float(linear_cka(x, y)) == pytest.approx(expected, rel=1e-10)


def test_linear_cka_unbiased_matches_loops():
    x, y = _rand(12, 8, 2, 3), _rand(13, 8, 5)
    K = x.reshape(8, -1) @ x.reshape(8, -1).T
    L = y @ y.T
    expected = hsic1_loops(K, L) / (hsic1_loops(K, K) * hsic1_loops(L, L)) ** 0.5
    assert float(linear_cka(x, y, unbiased=True)) == pytest.approx(expected, rel=1e-10)


def test_linear_cka_rejects_mismatched_samples():
    with pytest.raises(ValueError, match="same number of samples"):
        linear_cka(torch.zeros(5, 2), torch.zeros(6, 2))


shapes = st.tuples(st.integers(8, 14), st.integers(2, 9), st.integers(2, 9), st.integers(0, 10_000))


@settings(max_examples=25, deadline=None)
@given(shapes, st.booleans())
def test_cka_of_representation_with_itself_is_one(shape, unbiased):
    n, dx, _, seed = shape
    x = _rand(seed, n, dx)
    if unbiased:
        K = x @ x.T
        assume(float(hsic1(K, K)) > 1e-9)
    assert float(linear_cka(x, x, unbiased=unbiased)) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(shapes, st.booleans(), st.floats(1e-3, 1e3))
def test_cka_invariant_to_rotation_and_isotropic_scaling(shape, unbiased, scale):
    n, dx, dy, seed = shape
    x, y = _rand(seed, n, dx), _rand(seed + 1, n, dy) + _rand(seed + 2, n, 1)
    q, _ = torch.linalg.qr(_rand(seed + 3, dx, dx))  # orthogonal (dx, dx)
    if unbiased:
        K, L = x @ x.T, y @ y.T
        assume(float(hsic1(K, K)) > 1e-6 and float(hsic1(L, L)) > 1e-6)
    base = float(linear_cka(x, y, unbiased=unbiased))
    assert float(linear_cka(x @ q, y, unbiased=unbiased)) == pytest.approx(base, rel=1e-8, abs=1e-10)
    assert float(linear_cka(scale * x, y, unbiased=unbiased)) == pytest.approx(base, rel=1e-8, abs=1e-10)


# ---------------------------------------------------------------- MinibatchCKA
def _layers(seed: int, n: int, shapes_, dtype=F64):
    return [_rand(seed + i, n, *s, dtype=dtype) + 0.5 for i, s in enumerate(shapes_)]


def test_minibatch_cka_matches_loops_over_batches():
    shapes_a, shapes_b = [(3, 2), (4,), (2, 2, 2)], [(5,), (3, 3)]
    batches_a = [_layers(10 * k, 6, shapes_a) for k in range(3)]
    batches_b = []
    for k in range(3):
        shared = batches_a[k][0].reshape(6, -1)[:, 0]  # (6,) signal shared with A's layer 0
        layers_b = _layers(10 * k + 5, 6, shapes_b)
        batches_b.append([b + 0.3 * shared.view(6, *[1] * (b.dim() - 1)) for b in layers_b])
    metric = MinibatchCKA()
    for acts_a, acts_b in zip(batches_a, batches_b, strict=True):
        metric.update(acts_a, acts_b)
    got = metric.compute()
    assert got.shape == (3, 2)
    torch.testing.assert_close(got, minibatch_cka_loops(batches_a, batches_b), rtol=1e-10, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(5, 12), st.integers(1, 3), st.integers(0, 10_000))
def test_minibatch_cka_with_one_batch_equals_unbiased_cka(n, n_layers, seed):
    acts_a = _layers(seed, n, [(3, 2)] * n_layers)
    acts_b = _layers(seed + 50, n, [(4,), (2, 3)])
    for x in acts_a + acts_b:
        K = x.reshape(n, -1) @ x.reshape(n, -1).T
        assume(float(hsic1(K, K)) > 1e-6)
    metric = MinibatchCKA()
    metric.update(acts_a, acts_b)
    got = metric.compute()
    for i, x in enumerate(acts_a):
        for j, y in enumerate(acts_b):
            expected = float(linear_cka(x, y, unbiased=True))
            assert float(got[i, j]) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_minibatch_cka_self_comparison_diagonal_is_exactly_one():
    acts = _layers(3, 16, [(8, 4), (16,), (2, 2, 2)], dtype=torch.float32)
    metric = MinibatchCKA()
    metric.update(acts)
    metric.update(_layers(30, 16, [(8, 4), (16,), (2, 2, 2)], dtype=torch.float32))
    got = metric.compute()
    assert torch.equal(torch.diagonal(got), torch.ones(3, dtype=F64))
    torch.testing.assert_close(got, got.T)
    same = MinibatchCKA()
    same.update(acts, [a.clone() for a in acts])
    assert torch.equal(torch.diagonal(same.compute()), torch.ones(3, dtype=F64))


def test_minibatch_cka_float32_is_within_1e5_of_float64_on_uncentred_activations():
    g = torch.Generator().manual_seed(0)
    acts = [torch.nn.functional.gelu(torch.randn(16, 64, 512, generator=g) + 1.0) for _ in range(3)]
    other = [torch.nn.functional.gelu(a + 0.3 * torch.randn(a.shape, generator=g)) for a in acts]
    m32, m64 = MinibatchCKA(), MinibatchCKA()
    m32.update(acts, other)
    m64.update([a.double() for a in acts], [b.double() for b in other])
    assert (m32.compute() - m64.compute()).abs().max() < 1e-5


def test_minibatch_cka_summed_states_equal_one_instance_that_saw_both():
    b1a, b1b = _layers(1, 8, [(4,), (3, 2)]), _layers(2, 8, [(5,)])
    b2a, b2b = _layers(3, 6, [(4,), (3, 2)]), _layers(4, 6, [(5,)])
    one, two, both = MinibatchCKA(), MinibatchCKA(), MinibatchCKA()
    one.update(b1a, b1b)
    two.update(b2a, b2b)
    both.update(b1a, b1b)
    both.update(b2a, b2b)
    for name, tensor in one.states().items():
        tensor += two.states()[name]  # what all_reduce(SUM) does
    torch.testing.assert_close(one.compute(), both.compute(), rtol=1e-12, atol=0)
    assert float(one.count) == 2


def _ddp_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    metric = MinibatchCKA()
    metric.update(_layers(100 + rank, 6, [(4,), (3, 2)]), _layers(200 + rank, 6, [(5,)]))
    metric.sync()
    if rank == 0:
        torch.save(metric.compute(), out_file)
    dist.destroy_process_group()


def test_minibatch_cka_sync_under_two_process_gloo(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "cka.pt"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    both = MinibatchCKA()
    for rank in range(2):
        both.update(_layers(100 + rank, 6, [(4,), (3, 2)]), _layers(200 + rank, 6, [(5,)]))
    torch.testing.assert_close(torch.load(out), both.compute(), rtol=1e-12, atol=0)


def test_minibatch_cka_errors():
    metric = MinibatchCKA()
    with pytest.raises(RuntimeError, match="no updates"):
        metric.compute()
    with pytest.raises(ValueError, match="n > 3"):
        metric.update([torch.zeros(3, 4)])
    with pytest.raises(ValueError, match="samples"):
        metric.update([torch.zeros(5, 4), torch.zeros(6, 4)])
    metric.update(_layers(0, 5, [(4,)]))
    with pytest.raises(ValueError, match="layer counts"):
        metric.update(_layers(0, 5, [(4,), (4,)]))
    with pytest.raises(ValueError, match="acts_b"):
        metric.update(_layers(0, 5, [(4,)]), _layers(1, 5, [(4,)]))
    metric.reset()
    with pytest.raises(RuntimeError):
        metric.compute()


def test_minibatch_cka_is_not_clamped():
    # Independent small samples: the unbiased estimate is negative and must stay negative.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)
    metric = MinibatchCKA()
    metric.update([x], [y])
    value = float(metric.compute()[0, 0])
    assert value < 0
    assert value == pytest.approx(float(linear_cka(x, y, unbiased=True)), rel=1e-12)


# ---------------------------------------------------------------- MinibatchCKA inputs: lists and dicts
def test_minibatch_cka_rejects_a_bare_tensor():
    metric = MinibatchCKA()
    with pytest.raises(TypeError, match="single tensor.*list"):
        metric.update(torch.randn(16, 8, 50))  # would otherwise be read as 16 layers
    with pytest.raises(TypeError, match="acts_b is a single tensor"):
        metric.update([torch.randn(16, 8)], torch.randn(16, 8))
    with pytest.raises(TypeError, match="list or tuple"):
        metric.update(iter([torch.randn(16, 8)]))
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        metric.update({"x": [[1.0] * 4] * 8})
    assert metric.hsic_ab is None  # nothing was added


def test_minibatch_cka_dict_and_list_give_the_same_matrix_and_keep_the_names():
    names_a, names_b = ["blocks.0", "blocks.1", "head"], ["enc.0", "enc.1"]
    batches = [(_layers(10 * k, 7, [(3, 2), (4,), (2, 2, 2)]), _layers(10 * k + 5, 7, [(5,), (3, 3)]))
               for k in range(3)]
    as_list, as_dict, as_tuple = MinibatchCKA(), MinibatchCKA(), MinibatchCKA()
    for acts_a, acts_b in batches:
        as_list.update(acts_a, acts_b)
        as_dict.update(dict(zip(names_a, acts_a, strict=True)), dict(zip(names_b, acts_b, strict=True)))
        as_tuple.update(tuple(acts_a), tuple(acts_b))
    assert torch.equal(as_dict.compute(), as_list.compute())
    assert torch.equal(as_tuple.compute(), as_list.compute())
    assert as_dict.layers_a == tuple(names_a) and as_dict.layers_b == tuple(names_b)
    assert as_list.layers_a is None and as_list.layers_b is None
    self_dict = MinibatchCKA()
    self_dict.update(dict(zip(names_a, batches[0][0], strict=True)))
    assert self_dict.layers_a == self_dict.layers_b == tuple(names_a)
    as_dict.reset()
    assert as_dict.layers_a is None and as_dict.layers_b is None


def test_minibatch_cka_rejects_layer_names_that_change_between_updates():
    acts = _layers(0, 6, [(4,), (3,)])
    metric = MinibatchCKA()
    metric.update({"a": acts[0], "b": acts[1]}, {"c": acts[0]})
    with pytest.raises(ValueError, match=r"acts_a layer names changed.*\['a', 'b'\].*\['b', 'a'\]"):
        metric.update({"b": acts[1], "a": acts[0]}, {"c": acts[0]})  # same names, other order
    with pytest.raises(ValueError, match="acts_b layer names changed"):
        metric.update({"a": acts[0], "b": acts[1]}, {"d": acts[0]})
    with pytest.raises(ValueError, match="acts_a was a dict .* is a list"):
        metric.update(acts, {"c": acts[0]})
    assert float(metric.count) == 1  # rejected updates add nothing
    metric.update({"a": acts[0], "b": acts[1]}, {"c": acts[0]})
    assert float(metric.count) == 2
    from_list = MinibatchCKA()
    from_list.update(acts)
    with pytest.raises(ValueError, match="acts_a was a list .* is a dict"):
        from_list.update({"a": acts[0], "b": acts[1]})
