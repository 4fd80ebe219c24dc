"""Dynamic INT8 quantisation of the exported graphs, and the per-model choice.

``quantize_dynamic`` stores the weights of ``MatMul``/``Gemm`` nodes whose
second input is a constant as INT8 (per output channel) and quantises their
activations on the fly (UINT8, per tensor); everything else stays FP32.
That shrinks the big matrices (item embeddings, DiffRec's catalog-wide
layers) by ~4x and speeds them up, but on small graphs the extra
quantise/dequantise work eats the gain, on the unrolled ODE graphs it adds
nodes and bytes, and the rounding can cost ranking quality (SASRec). So INT8
is chosen per model, from ``benchmarks/onnx_bench.py``'s measurements
(:data:`QUANTIZE`).
"""

from __future__ import annotations

from pathlib import Path

# Measured by benchmarks/onnx_bench.py on ML-100K (2026-11-27, 2-core AMD EPYC
# shared with other work, load ~3.5, 1 ORT thread; quick-profile configs
# trained 40 s). Rule: INT8 when it is >= 10 % faster or saves >= 1 MB, and
# keeps top-10 overlap >= 0.9 and validation NDCG@10 within 1 % of FP32.
#   model          p50 ms full catalog     .onnx KB       NDCG@10          top-10
#                  FP32 -> INT8            FP32 -> INT8   FP32 -> INT8     overlap
#   sasrec         0.14 -> 0.12            1117 -> 693    .0796 -> .0787   0.984
#                  (-1.1 % NDCG: refused)
#   lightgcn       0.06 -> 0.04            1684 -> 435    .1037 -> .1030   0.982
#   kan            5.05 -> 8.66 (features  32 -> 41       .1028 -> .1022   0.992
#                  in numpy dominate)
#   neural_ode     9.30 -> 12.95           1991 -> 4020   .0339 -> .0336   0.988
#   quantum_fluid  21.4 -> 27.1            3688 -> 6453   .0378 -> .0379   0.972
#                  (the unrolled RK4 graph: INT8 adds quantise nodes per use)
#   hyperbolic     0.047 -> 0.043 (-9 %)   1266 -> 647    .0544 -> .0542   0.993
#   diffusion      0.17 -> 0.11            7920 -> 2004   .0718 -> .0720   0.987
QUANTIZE: dict[str, bool] = {
    "sasrec": False,
    "lightgcn": True,
    "kan": False,
    "neural_ode": False,
    "quantum_fluid": False,
    "hyperbolic": False,
    "diffusion": True,
}
"""Serve the INT8 graph? Filled from measurements (see the comment above)."""


def quantize_int8(
    src: str | Path, dst: str | Path, *, per_channel: bool = True
) -> Path:
    """Write ``src`` with INT8 weights (dynamic quantisation) to ``dst``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        Path(src),
        out,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return out
