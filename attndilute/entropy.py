"""Entropy decomposition of attention and the attention dilution index (seed Eq. 5-7).

For post-softmax weights ``α`` of query i, the entropy spent on a key class K is
``H_i^{Q->K} = -Σ_{j∈K} α_ij log α_ij`` (Eq. 5-6) with ``0 log 0 = 0``. Summing over the queries
of class Q gives ``h_QK``; ``ADI = h_rp / (h_rr + h_rp)`` (Eq. 7) is the share of the real queries'
entropy that goes to padding keys.

Two equivalent forms:

- :func:`entropy_decomposition` takes the attention weights (what a softmax hook sees);
- :func:`entropy_decomposition_from_scores` takes pre-softmax scores and works tile by tile with
  ``H_S = Σ_{j∈S} p_j (log Z - s_j)``, never materialising the full softmax — for fused kernels.

Both compute in float32 (float64 if given float64), whatever the input dtype.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields

import torch

_FIELDS = ("h_rr", "h_rp", "h_pr", "h_pp", "mass_rr", "mass_rp", "mass_pr", "mass_pp", "n_real", "n_pad")


@dataclass(frozen=True)
class EntropySums:
    """Entropy and attention-mass sums by query class and key class (r = real, p = padding).

    Every attribute is shaped like the leading dims ``(...)`` of the attention it came from, i.e.
    summed over queries and keys only. ``h_qk`` is the entropy real/pad queries spend on real/pad
    keys, ``mass_qk`` the attention mass, ``n_real``/``n_pad`` the number of real/pad queries.
    States are sums: add two ``EntropySums`` (or ``all_reduce`` each field) to pool them.
    """

    h_rr: torch.Tensor
    h_rp: torch.Tensor
    h_pr: torch.Tensor
    h_pp: torch.Tensor
    mass_rr: torch.Tensor
    mass_rp: torch.Tensor
    mass_pr: torch.Tensor
    mass_pp: torch.Tensor
    n_real: torch.Tensor
    n_pad: torch.Tensor

    def __add__(self, other: EntropySums) -> EntropySums:
        return EntropySums(*(getattr(self, f) + getattr(other, f) for f in _FIELDS))

    def sum(self, dim: int | tuple[int, ...]) -> EntropySums:
        """Sum every field over ``dim`` (e.g. over windows)."""
        return EntropySums(*(getattr(self, f).sum(dim) for f in _FIELDS))

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _no_autocast(tensor: torch.Tensor):
    """Leave a caller's autocast region: it would run the sums' matrix products in bf16 or fp16
    (an ``autocast_dtype`` forward reduces its attention inside the region)."""
    device = tensor.device.type
    is_available = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    if is_available(device) if is_available is not None else device in ("cpu", "cuda"):
        return torch.autocast(device, enabled=False)
    return contextlib.nullcontext()


def neg_plogp(p: torch.Tensor) -> torch.Tensor:
    """``-p log p`` elementwise with ``0 log 0 = 0`` (no NaN for exact zeros or one-hot rows)."""
    return -torch.special.xlogy(p, p)


def _class_weights(query_real, key_real, lead, nq, nk, device, dtype):
    qr = torch.as_tensor(query_real, device=device).bool()
    kr = torch.as_tensor(key_real, device=device).bool()
    qr = torch.broadcast_to(qr, (*lead, nq)).to(dtype)
    kr = torch.broadcast_to(kr, (*lead, nk)).to(dtype)
    return qr, kr


def source_entropy(
    attn: torch.Tensor,
    query_classes: torch.Tensor,
    key_classes: torch.Tensor,
    scores: torch.Tensor | None = None,
    *,
    uniform: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and attention mass by query class and key class, for k token sources (Eq. 5-6).

    The torch implementation of Eq. 5-6, on any device: :func:`entropy_decomposition` (k = 2:
    real, padding) and the online reduction of :mod:`attndilute.instrument.reduce` (k = 3: real,
    input padding, layout padding) call it. On a CPU with scores the reduction takes the one-pass
    kernel :mod:`attndilute.instrument.cpu_kernel` instead; tests hold the two to each other.

    Two forms give the same sums. From the weights alone, ``-Σ_j α_j log α_j`` takes a logarithm
    per entry. With the pre-softmax ``scores`` too (what a softmax hook also sees), every row's
    log-partition ``lse = s_j - log α_j`` at one key j with a non-negligible weight needs one
    logarithm per row, and ``-Σ_{j∈t} α_j log α_j = lse · mass_t - Σ_{j∈t} α_j s_j``: one product
    per entry. Keys scored ``-inf`` carry no weight and no entropy. When some row's anchor score
    is beyond ±1e4 (a fully masked row, or logits where float32 cancellation in ``lse · mass``
    would matter) the call uses the per-entry form.

    Queries are summed by class before keys: ``h = (q^T [lse α - α ⊙ s]) k``, as a (2k, Nq) and a
    (k, Nq) matrix times the (Nq, Nk) maps, then (k, Nk) @ (Nk, k); no per-row temporaries are
    formed. (The other order, the maps times an (Nk, k) matrix, ran at a third of the speed on
    CPU.) A call whose cancellation could exceed ``REL_TOL`` of its entropy takes the per-entry
    form (:func:`_checked`).

    Args:
        attn: (..., Nq, Nk) post-softmax weights, already in the working dtype.
        query_classes: (..., Nq, k) one-hot (or fractional) class weights of the queries.
        key_classes: (..., Nk, k) one-hot class weights of the keys.
        scores: (..., Nq, Nk) the logits ``attn`` is the softmax of (every bias and mask added),
            or None.
        uniform: the caller knows that, for every leading index, all queries and keys have the
            same one-hot class (a window wholly inside the image, or wholly padding): rows are
            summed whole instead of split by key class (the same sums, fewer passes).

    Returns:
        ``(h, mass)``, each (..., k, k): ``h[..., s, t] = Σ_{i∈s} -Σ_{j∈t} α_ij log α_ij`` and
        ``mass[..., s, t] = Σ_{i∈s} Σ_{j∈t} α_ij``.
    """
    with _no_autocast(attn):
        return _source_entropy(attn, query_classes, key_classes, scores, uniform)


def _source_entropy(attn, query_classes, key_classes, scores, uniform):
    """:func:`source_entropy` outside any autocast region."""
    scores = None if scores is None else scores.to(attn.dtype)
    lse = None if scores is None else _log_partition(attn, scores)  # (..., Nq, 1)
    if uniform:
        return _uniform_source_entropy(attn, query_classes, key_classes, scores, lse)
    k = query_classes.shape[-1]
    q_t = query_classes.transpose(-1, -2)  # (..., k, Nq)
    if lse is None:
        h, mass = q_t @ neg_plogp(attn) @ key_classes, q_t @ attn  # (..., k, k), (..., k, Nk)
    else:
        both = torch.cat(torch.broadcast_tensors(q_t, q_t * lse.transpose(-1, -2)), -2)  # (..., 2k, Nq)
        both = both @ attn  # (..., 2k, Nk): [Σ_i q α, Σ_i q lse α]
        mass = both[..., :k, :]

        def entropy(product: torch.Tensor) -> torch.Tensor:  # product: α ⊙ s (..., Nq, Nk)
            return (both[..., k:, :] - q_t @ product) @ key_classes  # (..., k, k)

        h = _checked(entropy, attn, scores, q_t @ lse.abs())
        if h is None:
            return source_entropy(attn, query_classes, key_classes)  # the per-entry form
    return h.clamp_min(0.0), mass @ key_classes


#: how far the scores form's float cancellation may go, relative to the entropy it yields
REL_TOL = 1e-4


def _checked(entropy, attn: torch.Tensor, scores: torch.Tensor, abs_lse: torch.Tensor) -> torch.Tensor | None:
    """``entropy(α ⊙ s)`` (..., k, k or 1) if accurate to ``REL_TOL``, else None (take ``-α log α``).

    The rounding error of ``lse · mass - Σ α s`` stays below ``eps · Σ_i |lse_i|`` (checked
    against a float64 oracle on random logits up to ±1500, the largest ratio seen 1.2);
    ``abs_lse`` (..., k, 1) holds that sum per query class. Peaked attention with large logits
    (low entropy, large ``|lse|``) fails the check. A NaN from ``0 · -inf`` (a masked key: no
    weight, no entropy) fails it too, and the product is taken again with ``s = 0`` there. One
    synchronisation in the usual case.
    """
    bound = (4 * torch.finfo(attn.dtype).eps / REL_TOL) * abs_lse  # (..., k, 1)
    h = entropy(attn * scores)
    if bool((bound <= h.sum(-1, keepdim=True)).all()):  # False for NaN
        return h
    if not bool(torch.isfinite(h).all()):
        h = entropy(attn * scores.masked_fill(attn == 0, 0.0))
    return h if bool((bound <= h.sum(-1, keepdim=True)).all()) else None


def _uniform_source_entropy(attn, query_classes, key_classes, scores, lse):
    """:func:`source_entropy` when every leading index has one class for all its tokens."""
    ent = None
    if lse is not None:  # (..., 1, 1): the entropy of all rows
        ent = _checked(lambda product: lse.sum(-2, keepdim=True) - product.sum((-1, -2))[..., None, None],
                       attn, scores, lse.abs().sum(-2, keepdim=True))
    if ent is None:
        ent = neg_plogp(attn).sum((-1, -2))[..., None, None]
    pair = query_classes[..., 0, :, None] * key_classes[..., 0, None, :]  # (..., k, k): the one class pair
    h = ent.clamp_min(0.0) * pair  # (..., k, k)
    return h, torch.broadcast_to(pair * float(attn.shape[-2]), h.shape)


#: rows whose largest score exceeds this magnitude use the per-entry logarithm (float32 cancellation)
SCORE_LIMIT = 1e4

#: the smallest anchor weight whose logarithm is trusted (normal float32 starts at 1.2e-38)
ANCHOR_MIN = 1e-30


def _log_partition(attn: torch.Tensor, scores: torch.Tensor) -> torch.Tensor | None:
    """(..., Nq, 1) every row's ``lse = log Σ_j exp s_j``, one logarithm per row; None where unsafe.

    ``lse = s_j - log α_j`` holds for every key j with a weight that is a normal float; the
    diagonal (a token's weight on itself, for self-attention) is read first because it costs
    no pass over the row; the row's largest weight and largest score are used when some diagonal
    weight is below 1e-30 (a masked token). None when some anchor score is not finite or beyond
    ±1e4: the caller then takes a logarithm per entry.
    """
    nq, nk = attn.shape[-2:]
    if nq == nk:
        # gathered once: the strided diagonal is read by several ops below
        anchor = attn.diagonal(0, -2, -1)[..., None].contiguous()
        anchor_score = scores.diagonal(0, -2, -1)[..., None].contiguous()
        if bool(((anchor > ANCHOR_MIN) & (anchor_score.abs() <= SCORE_LIMIT)).all()):  # False for NaN, ±inf
            return anchor_score - anchor.log()
    # the largest weight sits at the largest score (softmax is monotone in a row): two value-only
    # maxima, measured ~30x cheaper on CPU than max() with its indices
    anchor, anchor_score = attn.amax(-1, keepdim=True), scores.amax(-1, keepdim=True)
    if not bool((anchor_score.abs() <= SCORE_LIMIT).all()):
        return None
    return anchor_score - anchor.log()


def _sums(ent_k: torch.Tensor, mass_k: torch.Tensor, qr: torch.Tensor) -> EntropySums:
    """From per-query sums over real/pad keys ``(..., Nq, 2)`` to :class:`EntropySums`."""
    qp = 1 - qr
    h = torch.stack([(ent_k * qr[..., None]).sum(-2), (ent_k * qp[..., None]).sum(-2)], -2)  # (..., 2q, 2k)
    m = torch.stack([(mass_k * qr[..., None]).sum(-2), (mass_k * qp[..., None]).sum(-2)], -2)
    return EntropySums(
        h[..., 0, 0], h[..., 0, 1], h[..., 1, 0], h[..., 1, 1],
        m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1],
        qr.sum(-1), qp.sum(-1),
    )  # fmt: skip


def entropy_decomposition(
    attn: torch.Tensor, query_real: torch.Tensor, key_real: torch.Tensor
) -> EntropySums:
    """Decompose the entropy of attention rows into real/padding parts (Eq. 5-6).

    Args:
        attn: (..., Nq, Nk) post-softmax attention weights (any float dtype).
        query_real: (..., Nq) bool, True for real queries; broadcastable to ``attn[..., 0]``.
        key_real: (..., Nk) bool, True for real keys; broadcastable to ``attn[..., 0, :]``.

    Returns:
        :class:`EntropySums` with fields shaped ``(...)`` (summed over the last two axes only).
    """
    dtype = _work_dtype(attn.dtype)
    p = attn.to(dtype)  # (..., Nq, Nk)
    lead, (nq, nk) = p.shape[:-2], p.shape[-2:]
    qr, kr = _class_weights(query_real, key_real, lead, nq, nk, p.device, dtype)
    h, m = source_entropy(p, torch.stack([qr, 1 - qr], -1), torch.stack([kr, 1 - kr], -1))  # (..., 2, 2)
    return EntropySums(
        h[..., 0, 0], h[..., 0, 1], h[..., 1, 0], h[..., 1, 1],
        m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1],
        qr.sum(-1), (1 - qr).sum(-1),
    )  # fmt: skip


def entropy_decomposition_from_scores(
    scores: torch.Tensor, query_real: torch.Tensor, key_real: torch.Tensor, *, tile: int = 256
) -> EntropySums:
    """The same sums as :func:`entropy_decomposition`, from pre-softmax scores, tile by tile.

    With ``log Z_i = logsumexp_j s_ij`` and ``p_ij = exp(s_ij - log Z_i)``,
    ``H_i^{->S} = Σ_{j∈S} p_ij (log Z_i - s_ij)``; queries are processed ``tile`` at a time so
    the softmax of only one tile exists at once. Keys scored ``-inf`` get zero weight and zero
    entropy.

    Args:
        scores: (..., Nq, Nk) attention logits including every additive bias and mask.
        query_real, key_real: as in :func:`entropy_decomposition`.
        tile: queries per tile.
    """
    dtype = _work_dtype(scores.dtype)
    lead, (nq, nk) = scores.shape[:-2], scores.shape[-2:]
    qr, kr = _class_weights(query_real, key_real, lead, nq, nk, scores.device, dtype)
    keys = torch.stack([kr, 1 - kr], -1)  # (..., Nk, 2)
    ent_parts, mass_parts = [], []
    with _no_autocast(scores):
        for start in range(0, nq, tile):
            s = scores[..., start : start + tile, :].to(dtype)  # (..., t, Nk)
            log_z = torch.logsumexp(s, dim=-1, keepdim=True)  # (..., t, 1)
            p = torch.exp(s - log_z)
            gap = torch.where(p > 0, log_z - s, torch.zeros_like(s))  # -log p, 0 where p == 0
            ent_parts.append((p * gap) @ keys)  # (..., t, 2)
            mass_parts.append(p @ keys)
    return _sums(torch.cat(ent_parts, -2), torch.cat(mass_parts, -2), qr)


def adi(sums: EntropySums) -> torch.Tensor:
    """Attention dilution index (Eq. 7): ``h_rp / (h_rr + h_rp)``.

    NaN where there is no real query; 0 where the real queries have no entropy at all (one-hot
    rows spend nothing on padding).
    """
    total = sums.h_rr + sums.h_rp
    ratio = torch.where(total > 0, sums.h_rp / torch.where(total > 0, total, 1), 0.0)
    return torch.where(sums.n_real > 0, ratio, torch.nan)
