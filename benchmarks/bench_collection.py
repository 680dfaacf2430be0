"""A model's many tables in one forward: ``MXEmbeddingBagCollection`` against torch, in one process.

A CTR model looks up one table per sparse feature on every request (Criteo has 26), so at the
small batches of online inference a fixed cost per table and call is most of the time. This
times one forward of a collection of ``--features`` tables (sizes log-uniform between 1,000 and
``--max-rows`` rows, dim ``--dim``, float32 trained), one thread, on 1, 16 and 256 samples of
``--bag-len`` ids a feature (1: one-hot features, as Criteo's), each call a different batch:

- ours: ``MXEmbeddingBagCollection`` of mxint8 tables (its in-memory tables pooled in one call,
  ``embcompress::pooled_lookup_many``), under ``torch.inference_mode``;
- anchor: the dict of ``torch.nn.EmbeddingBag`` (fp32) it replaces, each called in turn (what
  torchrec's ``EmbeddingBagCollection`` does on a CPU without fbgemm);
- anchor: torch's int8 row-wise operator (``embedding_bag_byte_rowwise_offsets``) called per
  table on each table prepacked by torch;
- and, for what the one call saves, each ``MXEmbeddingBag`` of the collection called in turn.

Prints the median and 99th percentile of the per-call wall time and the ratio of medians (anchor
/ ours: above 1, ours is faster). Before timing, the collection is checked to return exactly what
its bags return one by one, and torch's ``F.embedding_bag`` on the decoded tables.

    python benchmarks/bench_collection.py
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from bench_latency import time_pair
from machine import machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=int, default=26)
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--bag-len", type=int, default=1)
    ap.add_argument("--bags", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=32, help="distinct batches drawn per size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as bench_lookup.py: both sides on huge pages
    import torch
    import torch.nn.functional as F

    import embcompress
    from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    sizes = np.exp(rng.uniform(np.log(1000), np.log(args.max_rows), args.features)).astype(int)
    names = [f"C{i + 1}" for i in range(args.features)]
    bags, mx, packed = {}, {}, {}
    for name, n in zip(names, sizes):
        x = torch.from_numpy(rng.standard_normal((int(n), args.dim), dtype=np.float32))
        bags[name] = torch.nn.EmbeddingBag(int(n), args.dim, mode="sum", _weight=x)
        mx[name] = MXEmbeddingBag.from_embedding_bag(bags[name], "mxint8", n_threads=1)
        packed[name] = torch.ops.quantized.embedding_bag_byte_prepack(x)
    coll = MXEmbeddingBagCollection(mx)

    print(f"machine: {machine()}")
    print(f"torch {torch.__version__}, embcompress backend: {embcompress.kernels.backend()}, 1 thread")
    print(f"{args.features} tables of {sizes.min()} to {sizes.max()} rows ({sizes.sum()} in all) x {args.dim}, "
          f"mxint8; {args.bag_len} id(s) a sample and feature; {args.calls} calls per pair and size, cycling "
          f"through {args.batches} batches; per-call wall time in microseconds")
    print()
    print(f"{'pair':<52} {'samples':>7} {'ours p50':>9} {'ours p99':>9} {'anchor p50':>10} {'anchor p99':>10} "
          f"{'anchor/ours':>11}")
    for n_bags in args.bags:
        n = n_bags * args.bag_len
        offsets = torch.arange(n_bags, dtype=torch.int64) * args.bag_len
        batches = [{name: (torch.from_numpy(rng.integers(0, size, n)), offsets) for name, size in zip(names, sizes)}
                   for _ in range(args.batches)]
        ours = lambda i: coll(batches[i])  # noqa: E731
        pairs = {
            "MXEmbeddingBagCollection | nn.EmbeddingBag each": (
                ours, lambda i: {k: bags[k](*v) for k, v in batches[i].items()}),
            "MXEmbeddingBagCollection | torch int8 op each": (
                ours, lambda i: {k: torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                    packed[k], v[0], v[1], False, 0, False, None, None, False) for k, v in batches[i].items()}),
            "MXEmbeddingBagCollection | MXEmbeddingBag each": (
                ours, lambda i: {k: mx[k](*v) for k, v in batches[i].items()}),
        }
        with torch.inference_mode():
            got, alone = coll(batches[0]), {k: mx[k](*v) for k, v in batches[0].items()}
            for k, (ids, offs) in batches[0].items():
                if not torch.equal(got[k], alone[k]):
                    raise SystemExit(f"MISMATCH: the collection's {k} differs from its bag's own lookup")
                want = F.embedding_bag(ids, mx[k].decoded_weight(), offs, mode="sum")
                if not torch.allclose(got[k], want, rtol=1e-5, atol=1e-5):
                    raise SystemExit(f"MISMATCH: the collection's {k} differs from F.embedding_bag on its decoded table")
            for name, (a, b) in pairs.items():
                t = time_pair({"ours": a, "anchor": b}, list(range(args.batches)), args.calls)
                p50 = {k: np.percentile(v, 50) * 1e6 for k, v in t.items()}
                p99 = {k: np.percentile(v, 99) * 1e6 for k, v in t.items()}
                print(f"{name:<52} {n_bags:>7} {p50['ours']:>9.1f} {p99['ours']:>9.1f} {p50['anchor']:>10.1f} "
                      f"{p99['anchor']:>10.1f} {p50['anchor'] / p50['ours']:>10.2f}x", flush=True)


if __name__ == "__main__":
    main()
