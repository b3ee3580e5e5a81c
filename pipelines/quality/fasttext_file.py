"""Check the structure of a fastText `.bin`/`.ftz` file before fastText reads it, without allocating its contents.

fastText 0.9.2 trusts every size it reads: a truncated or edited file made it allocate without bound (a raw
`MemoryError` after 2 minutes for a 200-byte file), loop for minutes on random bytes (past 300 s for a valid header
followed by random bytes), or load half a file and score every document 0.0. `check_fasttext_file` walks the file
as fastText's `FastText::loadModel` reads it (fastText `src/fasttext.cc`, `args.cc`, `dictionary.cc`,
`densematrix.cc`, `quantmatrix.cc`, `productquantizer.cc`; format version 12) through a memory map, and checks
that every count fits in the bytes that remain, that the matrix shapes agree with the header, and that the file
ends exactly where the last matrix ends.

Why this bounds fastText's load of a file that passes: every loop fastText runs while loading is bounded by a
count checked here (dictionary entries, prune pairs, matrix rows), every allocation it makes is at most the
file's own bytes (matrices, code books) plus its fixed vocabulary hash table (30 M int32 in 0.9.2; `size` is
checked below that bound, so the linear probing always finds a free slot), and the header values that would make
it divide by zero (`bucket` 0 with subwords or word n-grams) or pick an unknown loss or model are refused.

Layout (little-endian): int32 magic 793712314, int32 version; Args: int32 dim, ws, epoch, minCount, neg,
wordNgrams, loss, model, bucket, minn, maxn, lrUpdateRate, float64 t; Dictionary: int32 size, nwords, nlabels,
int64 ntokens, int64 pruneidx_size, `size` entries (NUL-terminated word, int64 count, int8 type 0 word/1 label),
`pruneidx_size` pairs of int32; bool quant_input; input matrix; bool qout; output matrix. A dense matrix is
int64 m, int64 n, m*n float32; a quantized one is bool qnorm, int64 m, int64 n, int32 codesize, codesize bytes,
a product quantizer (int32 dim, nsubq, dsub, lastdsub, dim*256 float32), then, with qnorm, m bytes and a second
product quantizer.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

MAGIC = 793712314  # FASTTEXT_FILEFORMAT_MAGIC_INT32, fastText src/fasttext.cc
VERSION = 12  # FASTTEXT_VERSION, written by fastText 0.9.x
MAX_VOCAB_SIZE = 30_000_000  # fastText src/dictionary.h: the size of 0.9.2's vocabulary hash table
KSUB = 256  # centroids per product-quantizer sub-space (nbits 8, fastText src/productquantizer.h)
LOSSES = range(1, 5)  # hs, ns, softmax, ova (fastText src/args.h loss_name)
MODELS = range(1, 4)  # cbow, sg, sup (fastText src/args.h model_name)
SUPERVISED = 3
_ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
_DICT = struct.Struct("<3iqq")  # size nwords nlabels ntokens pruneidx_size
_ENTRY_TAIL = struct.Struct("<qb")  # count, type
_SHAPE = struct.Struct("<qq")  # m, n
_PQ = struct.Struct("<4i")  # dim nsubq dsub lastdsub
_FLOAT = 4


class FastTextFileError(ValueError):
    """A file that is not a complete, consistent fastText model; the message says where it breaks."""


class _Reader:
    """Reads fixed-size fields from a memory map, refusing any read or skip past the end of the file."""

    def __init__(self, data: mmap.mmap | bytes):
        self.data = data
        self.pos = 0

    def left(self) -> int:
        """Bytes after the current position."""
        return len(self.data) - self.pos

    def skip(self, size: int, what: str) -> None:
        """Move past `size` bytes of `what`, which must lie inside the file."""
        if size < 0 or size > self.left():
            raise FastTextFileError(
                f"{what} needs {size} bytes at offset {self.pos}, but the file has {self.left()} left (truncated?)"
            )
        self.pos += size

    def unpack(self, layout: struct.Struct, what: str) -> tuple:
        """The fields of `layout` at the current position."""
        start = self.pos
        self.skip(layout.size, what)
        return layout.unpack_from(self.data, start)

    def flag(self, what: str) -> bool:
        """A one-byte C++ bool, which must be 0 or 1."""
        (value,) = self.unpack(struct.Struct("<B"), what)
        if value > 1:
            raise FastTextFileError(f"{what} at offset {self.pos - 1} is {value}, not a bool")
        return bool(value)

    def word(self, index: int) -> None:
        """Skip a NUL-terminated dictionary word."""
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise FastTextFileError(f"dictionary entry {index} at offset {self.pos} has no end (truncated?)")
        self.pos = end + 1


def check_fasttext_file(path: str | Path) -> None:
    """Check that `path` is a complete fastText model whose sizes agree with each other and with its length.

    Args:
        path: the `.bin` (or quantized `.ftz`) file.

    Raises:
        FastTextFileError: the file is empty, not fastText, of another format version, truncated, padded, or its
            header and matrices disagree; the message says what and where (the caller adds the file name).
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            raise FastTextFileError("the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _check(_Reader(data))


def _check(r: _Reader) -> None:
    magic, version = r.unpack(struct.Struct("<2i"), "the header")
    if magic != MAGIC:
        raise FastTextFileError("not a fastText model (its first 4 bytes are not fastText's magic number)")
    if version != VERSION:
        raise FastTextFileError(f"fastText format version {version}; only version {VERSION} (fastText 0.9) is read")
    dim, _, _, _, _, word_ngrams, loss, model, bucket, _, maxn, _, _ = r.unpack(_ARGS, "the training arguments")
    if dim <= 0 or bucket < 0 or loss not in LOSSES or model not in MODELS:
        raise FastTextFileError(f"impossible header: dim {dim}, bucket {bucket}, loss {loss}, model {model}")
    if bucket == 0 and (maxn > 0 or word_ngrams > 1):
        raise FastTextFileError("impossible header: subwords or word n-grams with 0 hash buckets")
    nwords, nlabels, pruned = _check_dictionary(r)
    quant_input = r.flag("quant_input")
    if pruned and not quant_input:
        raise FastTextFileError("a pruned dictionary with an unquantized input matrix (fastText refuses it)")
    rows = _check_matrix(r, quant_input, dim, "the input matrix")
    if not pruned and rows != nwords + bucket:
        raise FastTextFileError(f"the input matrix has {rows} rows, not nwords + bucket = {nwords + bucket}")
    quant_output = r.flag("qout") and quant_input
    rows = _check_matrix(r, quant_output, dim, "the output matrix")
    expected = nlabels if model == SUPERVISED else nwords
    if rows != expected:
        raise FastTextFileError(f"the output matrix has {rows} rows, not {expected} (the dictionary's classes)")
    if r.left():
        raise FastTextFileError(f"{r.left()} unexpected bytes after the output matrix (offset {r.pos})")


def _check_dictionary(r: _Reader) -> tuple[int, int, bool]:
    """Walk the dictionary; return (nwords, nlabels, pruned)."""
    size, nwords, nlabels, _, pruneidx_size = r.unpack(_DICT, "the dictionary header")
    if not 0 <= size < MAX_VOCAB_SIZE or nwords < 0 or nlabels < 0 or size != nwords + nlabels:
        raise FastTextFileError(f"impossible dictionary: size {size}, nwords {nwords}, nlabels {nlabels}")
    if pruneidx_size < -1:
        raise FastTextFileError(f"impossible dictionary: pruneidx_size {pruneidx_size}")
    # Each entry takes at least 10 bytes (NUL, count, type): refuse a count the file cannot hold before looping.
    if size * 10 > r.left():
        raise FastTextFileError(f"the dictionary lists {size} entries but the file has {r.left()} bytes left")
    for i in range(size):
        r.word(i)
        count, kind = r.unpack(_ENTRY_TAIL, f"dictionary entry {i}")
        if count < 0 or kind != (i >= nwords):
            raise FastTextFileError(f"dictionary entry {i}: count {count}, type {kind} (words first, then labels)")
    r.skip(max(pruneidx_size, 0) * 8, "the pruned-word index")
    return nwords, nlabels, pruneidx_size >= 0


def _check_matrix(r: _Reader, quantized: bool, dim: int, what: str) -> int:
    """Walk a dense or quantized matrix of `dim` columns; return its number of rows."""
    qnorm = r.flag(f"{what}'s qnorm") if quantized else False
    rows, cols = r.unpack(_SHAPE, f"{what}'s shape")
    if rows < 0 or cols != dim:
        raise FastTextFileError(f"{what} is {rows} x {cols}, but the header says {dim} dimensions")
    if not quantized:
        r.skip(rows * cols * _FLOAT, what)
        return rows
    (codesize,) = r.unpack(struct.Struct("<i"), f"{what}'s code size")
    r.skip(codesize, f"{what}'s codes")
    _check_quantizer(r, dim, what)
    if qnorm:
        r.skip(rows, f"{what}'s norm codes")
        _check_quantizer(r, 1, f"{what}'s norms")
    return rows


def _check_quantizer(r: _Reader, dim: int, what: str) -> None:
    """Walk a product quantizer of `dim` dimensions (its centroids)."""
    pq_dim, nsubq, dsub, _ = r.unpack(_PQ, f"{what}'s quantizer")
    if pq_dim != dim or nsubq <= 0 or dsub <= 0:
        raise FastTextFileError(f"{what}'s quantizer: dim {pq_dim} ({dim} expected), {nsubq} sub-spaces of {dsub}")
    r.skip(pq_dim * KSUB * _FLOAT, f"{what}'s quantizer centroids")
