"""Which documents of which source go where in a mixture: shares, whole-document picks, the seeded order.

Shares: source i gets `round(tokens x weight_i)` train tokens (weights normalised to sum to 1), counted as
units `[EOT, doc...]`, so the EOTs count as the trainer sees them. Picks: each source's documents are taken in a
seeded order of its own, whole; a source smaller than its share is taken whole `e` times over (a fresh order
each pass) and then in part, and the last document taken is the one that brings the count closest to the share
(so a source is off its share by at most half a document). More than `max_epochs` passes is refused. Order:
every picked unit of every source is then placed by one seeded shuffle (`pipelines.tokenize.job.document_order`,
a bijection: no ties, no dependence on numpy's RNG streams), so sources interleave evenly through the shards.

Memory: the plan holds three int64 words per picked unit (source, offset, length), proportional to the
documents of the mixture, not to its tokens.
"""

from __future__ import annotations

import numpy as np

from pipelines.common.hashing import stable_hash
from pipelines.mix.sources import MixError, Source
from pipelines.tokenize.job import document_order


def shares(tokens: int, weights: list[float]) -> list[int]:
    """Train tokens of each source: `round(tokens x weight)` (weights already normalised)."""
    return [round(tokens * w) for w in weights]


def check_fillable(source: Source, share: int, max_epochs: int) -> None:
    """Refuse a share the source cannot fill in `max_epochs` passes over its documents.

    Raises:
        MixError: naming the source, its tokens and the passes its share would need.
    """
    have = source.stream.size
    if share > max_epochs * have:
        raise MixError(
            f"source {source.spec.name!r} ({source.manifest_path}) has {have:,} train tokens in "
            f"{source.documents:,} documents; its share of {share:,} tokens would need {share / have:.1f} epochs, "
            f"more than --max-epochs {max_epochs}: lower its weight or --tokens, or raise --max-epochs"
        )


def _epoch_seed(seed: int, name: str, epoch: int) -> int:
    return int(stable_hash({"seed": seed, "source": name, "epoch": epoch}), 16)


def pick_documents(source: Source, share: int, seed: int) -> np.ndarray:
    """The documents (indices into `source.starts`) that fill `share`, whole, in this source's seeded order.

    Returns:
        int64 document indices; a document appears once per pass over the source that uses it.
    """
    lengths = np.diff(source.starts)
    total = int(lengths.sum())
    full, rest = divmod(share, total)
    picks = [document_order(lengths.size, _epoch_seed(seed, source.spec.name, e)) for e in range(full)]
    if rest:
        order = document_order(lengths.size, _epoch_seed(seed, source.spec.name, full))
        reached = np.cumsum(lengths[order])
        k = int(np.searchsorted(reached, rest))  # reached[k] >= rest: k + 1 documents cover the rest
        if k > 0 and rest - reached[k - 1] < reached[k] - rest:
            k -= 1  # k documents fall short by less than k + 1 overshoot
        picks.append(order[: k + 1])
    return np.concatenate(picks) if picks else np.empty(0, np.int64)


def mixture_units(sources: list[Source], picks: list[np.ndarray], seed: int) -> np.ndarray:
    """Every picked unit as a row (source index, offset in its stream, length), in the mixture's seeded order.

    Returns:
        int64 array of shape (units, 3).
    """
    rows = []
    for i, (source, docs) in enumerate(zip(sources, picks, strict=True)):
        block = np.empty((docs.size, 3), dtype=np.int64)
        block[:, 0] = i
        block[:, 1] = source.starts[docs]
        block[:, 2] = source.starts[docs + 1] - source.starts[docs]
        rows.append(block)
    units = np.concatenate(rows)
    return units[document_order(units.shape[0], seed)]


def epochs(taken: int, source: Source) -> float:
    """Passes over the source's train tokens (never empty: `load_source`) that `taken` amounts to, to 3 places."""
    return round(taken / source.stream.size, 3)
