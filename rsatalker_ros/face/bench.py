"""Benchmark the skinning layer: ``python -m rsatalker_ros.face.bench [--threads 1] [--head default_older]``.

Prints the mean forward time per call for batch 1 (the live pipeline: 25 fps per participant) and batch 32.
"""

import argparse
import time

import torch

from rsatalker_ros.face.head_model import load_head


def time_forward(head, batch: int, repeats: int) -> float:
    motion = torch.zeros(batch, head.layout.dim)
    with torch.no_grad():
        for _ in range(10):
            head.from_motion(motion)
        start = time.perf_counter()
        for _ in range(repeats):
            head.from_motion(motion)
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", default="default_older", help="default head name, FLAME .pkl or baked .npz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    head = load_head(args.head)
    for batch in (1, 32):
        ms = time_forward(head, batch, args.repeats if batch == 1 else max(10, args.repeats // 10))
        print(f"{head.name}: {head.n_vertices} vertices, batch {batch:>2}: {ms:.3f} ms per forward "
              f"({args.threads} thread(s))")


if __name__ == "__main__":
    main()
