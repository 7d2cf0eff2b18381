"""Build tests/data/awq_golden/: small AutoAWQ GEMM-layout linears and their
dequantized weights, computed with torch from the layout's definition alone
(AutoAWQ's WQLinear_GEMM.from_linear packing; no tmrun code involved).

For each case (in, out, group): random int4 codes q [out][in], zero points
z [out][in/g] in [0, 15] and fp16 scales s [out][in/g];
  qweight I32 [in][out/8]: word (i, c) nibble p holds q[8c + order[p]][i]
  qzeros  I32 [in/g][out/8]: the same packing of z
  scales  F16 [in/g][out]
  w       F32 [out][in] = (q - z) * s, per group along in-features
order = [0, 2, 4, 6, 1, 3, 5, 7] (AutoAWQ's order_map).

  python3 scripts/device/make_awq_golden.py OUT_DIR
"""
import os
import sys

import torch
from safetensors.torch import save_file

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def pack(codes):  # codes [rows][cols] int in [0, 15] -> [rows][cols/8] int32
    rows, cols = codes.shape
    out = torch.zeros(rows, cols // 8, dtype=torch.int64, device=codes.device)
    for c in range(cols // 8):
        for p in range(8):
            out[:, c] |= codes[:, 8 * c + ORDER[p]].long() << (4 * p)
    out = torch.where(out >= 2**31, out - 2**32, out)  # the same bits as int32
    return out.to(torch.int32)


def case(n_in, n_out, group, seed, dev):
    g = torch.Generator(device=dev).manual_seed(seed)
    ng = n_in // group
    q = torch.randint(0, 16, (n_out, n_in), generator=g, device=dev)
    z = torch.randint(0, 16, (n_out, ng), generator=g, device=dev)
    s = (torch.rand((n_out, ng), generator=g, device=dev) * 0.05 + 0.001).half()
    w = (q.float() - z.float().repeat_interleave(group, 1)) * s.float().repeat_interleave(group, 1)
    return {
        "qweight": pack(q.t().contiguous()).cpu(),
        "qzeros": pack(z.t().contiguous()).cpu(),
        "scales": s.t().contiguous().cpu(),
        "w": w.cpu(),
    }


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    for n_in, n_out, group, seed in [(256, 64, 128, 1), (256, 64, 32, 2)]:
        t = case(n_in, n_out, group, seed, dev)
        name = f"awq_in{n_in}_out{n_out}_g{group}.safetensors"
        save_file(t, os.path.join(out_dir, name), metadata={"device": dev, "torch": torch.__version__})
        print(name, {k: tuple(v.shape) for k, v in t.items()})


if __name__ == "__main__":
    main()
