"""Linear CKA with the unbiased HSIC estimator, for one pair or all layer pairs at once.

Definitions follow the seed's Appendix B: ``HSIC_1`` (Eq. 10) on Gram matrices with a zeroed
diagonal, linear CKA (Eq. 8, Kornblith et al. 2019) and minibatch CKA (Eq. 9, Nguyen et al.
2021): HSIC_1 averaged over minibatches, then ``A / sqrt(B C)``. Values are never clamped.

Numerics (measured in ``benchmarks/bench_cka.py``, see ``docs/cka.md``): Gram matrices of the
raw (uncentred) float32 activations are formed in float32 over feature chunks of
``GRAM_CHUNK`` columns, one batched matrix product for all chunks, and the chunk partial Grams
are summed in float64; the diagonal is zeroed before any sum and every HSIC term is computed
in float64. This stays within 1e-6 of a float64 computation at pytorch-cka's speed, where a
single float32 Gram with float32 HSIC terms (pytorch-cka 1.1.3) is off by ~3e-3. HSIC_1 is
invariant to translating the features, so centring them is not needed for correctness, and
chunked accumulation removes the float32 error that centring would otherwise be needed for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch

__all__ = ["GRAM_CHUNK", "MinibatchCKA", "gram", "hsic1", "linear_cka"]

GRAM_CHUNK = 8192
"""Feature columns per float32 partial Gram; partials are summed in float64."""


@contextlib.contextmanager
def _highest_matmul_precision() -> Iterator[None]:
    """Keep float32 matmuls in full float32 (no TF32/bf16 shortcuts) inside the block."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def gram(x: torch.Tensor, *, chunk: int = GRAM_CHUNK) -> torch.Tensor:
    """Linear-kernel Gram matrix ``K = X X^T`` of per-sample flattened features, zero diagonal.

    Args:
        x: activations ``(n, ...)``; each sample is flattened to ``(n, d)``. Half and bfloat16
            inputs are computed in float32; float64 stays float64.
        chunk: feature columns per partial product; partials are accumulated in float64.

    Returns:
        ``K~`` of Eq. 10: ``(n, n)`` float64 with the diagonal set to 0.
    """
    x = x.reshape(x.shape[0], -1)  # (n, d)
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    n, d = x.shape
    n_full = d // chunk
    with _highest_matmul_precision():
        k = torch.zeros(n, n, dtype=torch.float64, device=x.device)
        if n_full:
            # (n_full, n, chunk): a strided view, no copy; one batched product for all chunks.
            parts = x[:, : n_full * chunk].unflatten(1, (n_full, chunk)).transpose(0, 1)
            k += torch.bmm(parts, parts.transpose(1, 2)).to(torch.float64).sum(0)  # (n, n)
        if d > n_full * chunk:
            rest = x[:, n_full * chunk :]  # (n, d mod chunk)
            k += (rest @ rest.T).to(torch.float64)
    k.fill_diagonal_(0.0)
    return k


def _hsic1_all(ka: torch.Tensor, kb: torch.Tensor) -> torch.Tensor:
    """Eq. 10 for every pair of Gram matrices, with one matrix product per term.

    Args:
        ka: ``(La, n, n)`` Gram matrices with zero diagonal.
        kb: ``(Lb, n, n)`` Gram matrices with zero diagonal.

    Returns:
        ``(La, Lb)`` unbiased HSIC estimates.
    """
    n = ka.shape[-1]
    trace = ka.flatten(1) @ kb.flatten(1).T  # (La, Lb): tr(K L) = <K, L> for symmetric L
    total_a = ka.sum(dim=(1, 2))  # (La,): 1^T K 1
    total_b = kb.sum(dim=(1, 2))  # (Lb,)
    cols_a = ka.sum(dim=1)  # (La, n): 1^T K
    cols_b = kb.sum(dim=1)  # (Lb, n)
    cross = cols_a @ cols_b.T  # (La, Lb): 1^T K L 1 for symmetric K
    main = trace + torch.outer(total_a, total_b) / ((n - 1) * (n - 2)) - cross * (2.0 / (n - 2))
    return main / (n * (n - 3))


def _check_square(name: str, k: torch.Tensor) -> None:
    if k.dim() != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {tuple(k.shape)}")


def _check_n(n: int) -> None:
    if n <= 3:
        raise ValueError(f"HSIC_1 (Eq. 10) needs n > 3 samples, got n={n}")


def hsic1(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:  # noqa: N803 (the seed's names)
    """Unbiased HSIC estimator HSIC_1 (seed Eq. 10; Song et al. 2012).

    The diagonals are zeroed here (``K~``, ``L~``), so raw Gram matrices may be passed.
    Computed in float64.

    Args:
        K: ``(n, n)`` symmetric Gram matrix.
        L: ``(n, n)`` symmetric Gram matrix of the same samples.

    Returns:
        Scalar float64 tensor.

    Raises:
        ValueError: non-square or mismatched matrices, or ``n <= 3``.
    """
    _check_square("K", K)
    _check_square("L", L)
    if K.shape != L.shape:
        raise ValueError(f"K and L must have the same shape, got {tuple(K.shape)} and {tuple(L.shape)}")
    _check_n(K.shape[0])
    k = K.to(torch.float64).clone().fill_diagonal_(0.0)
    l = L.to(torch.float64).clone().fill_diagonal_(0.0)
    return _hsic1_all(k[None], l[None])[0, 0]


def linear_cka(X: torch.Tensor, Y: torch.Tensor, *, unbiased: bool = False) -> torch.Tensor:  # noqa: N803
    """Linear CKA between two representations of the same samples (seed Eq. 8).

    Biased (``unbiased=False``): Kornblith et al. (2019) with centred features,
    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``; evaluated in feature space when the feature
    dimensions are small and through the identical Gram form ``<K_c, L_c>`` otherwise.
    Unbiased: ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` (Eq. 10).

    Args:
        X: ``(n, ...)`` activations, flattened per sample to ``(n, dx)``.
        Y: ``(n, ...)`` activations, flattened per sample to ``(n, dy)``.
        unbiased: use the unbiased HSIC_1 estimator (needs ``n > 3``).

    Returns:
        Scalar float64 tensor (not clamped).
    """
    x = X.reshape(X.shape[0], -1).to(torch.float64)  # (n, dx)
    y = Y.reshape(Y.shape[0], -1).to(torch.float64)  # (n, dy)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"X and Y must have the same number of samples, got {x.shape[0]} and {y.shape[0]}")
    if unbiased:
        k, l = x @ x.T, y @ y.T  # (n, n)
        return hsic1(k, l) / torch.sqrt(hsic1(k, k) * hsic1(l, l))
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if dx * dy <= n * n:  # feature space: (dy, dx), (dx, dx), (dy, dy)
        xy = torch.linalg.matrix_norm(y.T @ x) ** 2
        xx = torch.linalg.matrix_norm(x.T @ x)
        yy = torch.linalg.matrix_norm(y.T @ y)
    else:  # sample space: <K_c, L_c> = ||Y^T X||_F^2 for centred features
        k, l = x @ x.T, y @ y.T  # (n, n)
        xy, xx, yy = (k * l).sum(), torch.linalg.matrix_norm(k), torch.linalg.matrix_norm(l)
    return xy / (xx * yy)


_Layers = Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
"""One minibatch of a model: a list/tuple of ``(n, ...)`` tensors, or a dict {layer name: tensor}."""


def _as_layers(acts: _Layers, side: str = "acts") -> tuple[tuple[str, ...] | None, list[torch.Tensor]]:
    """Split one minibatch of layer activations into its layer names and tensors.

    Args:
        acts: a list or tuple of tensors (no names), or a dict ``{layer name: tensor}``; each
            tensor ``(n, ...)``. A bare tensor is refused: iterating it would silently treat its
            first axis as layers.
        side: how the argument is called in error messages.

    Returns:
        ``(names, tensors)``; ``names`` is ``None`` for a list or tuple.

    Raises:
        TypeError: a bare tensor, another container, or an element that is not a tensor.
    """
    if isinstance(acts, torch.Tensor):
        raise TypeError(
            f"{side} is a single tensor of shape {tuple(acts.shape)}; pass a list of per-layer tensors "
            f"(e.g. [x] for one layer) or a dict {{layer name: tensor}}, each shaped (n, ...)"
        )
    if isinstance(acts, Mapping):
        names: tuple[str, ...] | None = tuple(acts.keys())
        tensors = list(acts.values())
    elif isinstance(acts, list | tuple):
        names, tensors = None, list(acts)
    else:
        raise TypeError(
            f"{side} must be a list or tuple of per-layer tensors or a dict {{layer name: tensor}}, "
            f"got {type(acts).__name__}"
        )
    for key, t in zip(names if names is not None else range(len(tensors)), tensors, strict=True):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{side}: layer {key!r} is a {type(t).__name__}, not a torch.Tensor")
    return names, tensors


def _stack_grams(names: tuple[str, ...] | None, acts: Sequence[torch.Tensor], chunk: int) -> torch.Tensor:
    if len(acts) == 0:
        raise ValueError("need at least one layer of activations")
    labels = list(names) if names is not None else list(range(len(acts)))
    n = acts[0].shape[0] if acts[0].dim() else 0
    for label, a in zip(labels, acts, strict=True):
        if a.dim() == 0 or a.shape[0] != n:
            raise ValueError(f"layer {label!r} has shape {tuple(a.shape)}, layer {labels[0]!r} {n} samples")
    _check_n(n)
    return torch.stack([gram(a, chunk=chunk) for a in acts])  # (L, n, n)


def _check_names(side: str, before: tuple[str, ...] | None, now: tuple[str, ...] | None) -> None:
    """Later updates must name the same layers in the same order as the first one."""
    if before == now:
        return
    if before is None or now is None:
        was, got = ("a list", "a dict") if before is None else ("a dict", "a list")
        raise ValueError(f"{side} was {was} of layers in the first update and is {got} now; keep one form")
    raise ValueError(
        f"{side} layer names changed since the first update: expected {list(before)}, got {list(now)}"
    )


class MinibatchCKA:
    """Minibatch linear CKA for all layer pairs (seed Eq. 9 with HSIC_1 of Eq. 10).

    Each update takes one minibatch of every layer of model A (and B): a list or tuple of
    ``(n, ...)`` tensors, or a dict ``{layer name: tensor}``; each sample is flattened. With
    dicts the names are kept in :attr:`layers_a` / :attr:`layers_b` (the rows and columns of
    :meth:`compute`), and every later update must give the same names in the same order.

    States are sums, so they reduce across processes with one ``all_reduce(SUM)`` each
    (:meth:`sync`): ``hsic_ab`` ``(La, Lb)``, ``hsic_aa`` ``(La,)``, ``hsic_bb`` ``(Lb,)`` and
    ``count`` (number of minibatches), all float64. ``compute`` returns
    ``A / sqrt(B C)`` with ``A = hsic_ab / count`` etc.; the counts cancel.

    Example:
        >>> metric = MinibatchCKA()
        >>> for batch in loader:                       # doctest: +SKIP
        ...     metric.update(acts_model_a(batch), acts_model_b(batch))   # dicts or lists
        >>> cka = metric.compute()                     # (La, Lb)
        >>> metric.layers_a, metric.layers_b           # doctest: +SKIP

    Args:
        chunk: feature columns per float32 partial Gram (see :func:`gram`).

    Attributes:
        layers_a: layer names of A (the rows of :meth:`compute`) when updates pass dicts, else
            ``None``.
        layers_b: layer names of B (the columns); A's names when comparing A with itself.
    """

    def __init__(self, *, chunk: int = GRAM_CHUNK) -> None:
        self.chunk = chunk
        self.reset()

    def reset(self) -> None:
        """Forget every update (and the layer names)."""
        self.hsic_ab: torch.Tensor | None = None  # (La, Lb)
        self.hsic_aa: torch.Tensor | None = None  # (La,)
        self.hsic_bb: torch.Tensor | None = None  # (Lb,)
        self.count: torch.Tensor | None = None  # () number of minibatches
        self.layers_a: tuple[str, ...] | None = None  # rows of compute(); None for lists
        self.layers_b: tuple[str, ...] | None = None  # columns; A's names when b is None
        self._self_compare: bool | None = None

    def update(self, acts_a: _Layers, acts_b: _Layers | None = None) -> None:
        """Add one minibatch.

        Args:
            acts_a: every layer of model A for one minibatch of ``n`` samples: a list or tuple
                of tensors ``(n, ...)`` or a dict ``{layer name: tensor}`` (flattened per sample).
                A bare tensor is an error (pass ``[x]`` for a single layer).
            acts_b: the same ``n`` samples through model B, in the same form; ``None``
                compares A with itself (the Grams are formed once).

        Raises:
            TypeError: a bare tensor or another container instead of a list/tuple/dict.
            ValueError: ``n <= 3``, layers with different ``n``, or layer names, layer counts or
                the self-comparison differing from the first update.
        """
        names_a, tensors_a = _as_layers(acts_a, "acts_a")
        names_b, tensors_b = (names_a, None) if acts_b is None else _as_layers(acts_b, "acts_b")
        if self._self_compare is not None:
            if self._self_compare != (acts_b is None):
                raise ValueError("update() was called with acts_b before; keep comparing the same way")
            _check_names("acts_a", self.layers_a, names_a)
            _check_names("acts_b", self.layers_b, names_b)
        ka = _stack_grams(names_a, tensors_a, self.chunk)  # (La, n, n)
        if tensors_b is None:
            hab = _hsic1_all(ka, ka)  # (La, La)
            haa, hbb = torch.diagonal(hab).clone(), torch.diagonal(hab).clone()
        else:
            kb = _stack_grams(names_b, tensors_b, self.chunk)  # (Lb, n, n)
            if kb.shape[-1] != ka.shape[-1]:
                raise ValueError(f"A has {ka.shape[-1]} samples in this batch, B has {kb.shape[-1]}")
            hab = _hsic1_all(ka, kb)  # (La, Lb)
            # Full (L, L) products (tiny) so that identical A and B give bit-identical terms.
            haa = torch.diagonal(_hsic1_all(ka, ka)).clone()  # (La,)
            hbb = torch.diagonal(_hsic1_all(kb, kb)).clone()  # (Lb,)
        if self.hsic_ab is None:
            self._self_compare = acts_b is None
            self.layers_a, self.layers_b = names_a, names_b
            self.hsic_ab, self.hsic_aa, self.hsic_bb = hab, haa, hbb
            self.count = torch.ones((), dtype=torch.float64, device=hab.device)
            return
        if hab.shape != self.hsic_ab.shape:
            raise ValueError(f"layer counts changed: {tuple(hab.shape)} after {tuple(self.hsic_ab.shape)}")
        self.hsic_ab += hab
        self.hsic_aa += haa
        self.hsic_bb += hbb
        self.count += 1

    def states(self) -> dict[str, torch.Tensor]:
        """The summed states by name (what :meth:`sync` reduces)."""
        if self.hsic_ab is None:
            raise RuntimeError("MinibatchCKA has no updates")
        return {"hsic_ab": self.hsic_ab, "hsic_aa": self.hsic_aa, "hsic_bb": self.hsic_bb,
                "count": self.count}

    def merge(self, states: dict[str, torch.Tensor]) -> None:
        """Add another accumulator's :meth:`states` (e.g. gathered from another process)."""
        if self.hsic_ab is None:
            self.hsic_ab, self.hsic_aa, self.hsic_bb, self.count = (
                states["hsic_ab"].clone(), states["hsic_aa"].clone(), states["hsic_bb"].clone(),
                states["count"].clone())
            return
        for name, tensor in self.states().items():
            tensor += states[name].to(tensor.device)

    def sync(self, process_group=None) -> None:
        """Sum the states over all processes (``torch.distributed.all_reduce``, SUM).

        Every rank must have called :meth:`update` at least once with the same layers (names
        are not exchanged; they must be the same on every rank). After
        ``sync`` each rank's :meth:`compute` equals one process that saw every minibatch.

        Args:
            process_group: the group to reduce over; the default group when ``None``.
        """
        import torch.distributed as dist

        for tensor in self.states().values():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=process_group)

    def compute(self) -> torch.Tensor:
        """Eq. 9: ``A / sqrt(B C)`` for every layer pair.

        Returns:
            ``(La, Lb)`` float64; not clamped (NaN where a self-HSIC is negative).
        """
        s = self.states()
        a = s["hsic_ab"] / s["count"]  # (La, Lb)
        b = s["hsic_aa"] / s["count"]  # (La,)
        c = s["hsic_bb"] / s["count"]  # (Lb,)
        return a / torch.sqrt(torch.outer(b, c))
