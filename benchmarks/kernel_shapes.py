"""What a new matrix shape costs on CPU: a small batched product, first call of each shape against repeats.

On CPU, PyTorch hands bf16 matrix products to oneDNN, which builds a kernel per
shape; fp32 products take another path. A training step whose tensor shapes
change every step (a varlen row grouped by exact sample length, a text width
that follows the step's longest caption) pays that building on most calls.
This prints, for a ``(B, L, L) @ (B, L, 48)`` product (attention's ``P @ V``
at the joint model's head width), the mean time per call over 200 shapes never
seen before, and over the same 200 shapes again; and over one shape repeated.

    uv run python benchmarks/kernel_shapes.py

The numbers quoted in ``unidit.backbones.varlen`` come from this script.
"""

from __future__ import annotations

import time

import torch
from unidit.training.step_timer import cpu_model


def mean_call_us(shapes: list[tuple[int, int]], dtype: torch.dtype) -> float:
    """Mean microseconds per ``bmm`` over ``(batch, length)`` shapes, in order."""
    operands = [(torch.randn(b, n, n, dtype=dtype), torch.randn(b, n, 48, dtype=dtype)) for b, n in shapes]
    start = time.perf_counter()
    for a, v in operands:
        torch.bmm(a, v)
    return (time.perf_counter() - start) / len(operands) * 1e6


def main() -> None:
    torch.manual_seed(0)
    one = [(4, 74)] * 200
    varied = [(4, 40 + i) for i in range(200)]  # 200 lengths never multiplied before
    print(f"{cpu_model()}, torch {torch.__version__}")
    print("| dtype | one shape repeated | 200 new shapes, first call | the same 200 again |")
    print("| --- | --- | --- | --- |")
    for dtype in (torch.float32, torch.bfloat16):
        mean_call_us(one, dtype)  # warm-up of the repeated shape
        repeated = mean_call_us(one, dtype)
        first = mean_call_us(varied, dtype)
        again = mean_call_us(varied, dtype)
        name = str(dtype).removeprefix("torch.")
        print(f"| {name} | {repeated:.0f} us | {first:.0f} us | {again:.0f} us |")


if __name__ == "__main__":
    main()
