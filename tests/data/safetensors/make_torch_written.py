"""Makes torch_written.safetensors, the reference-writer golden that
tests/c/test_safetensors.c reads: python3 make_torch_written.py (needs torch and
safetensors; made with safetensors 0.8.0, torch 2.11.0).  Never edit the output
by hand.  The reference writer orders tensors by dtype alignment, so this file's
layout differs from what tm_weights_save writes."""
import os

import torch
from safetensors.torch import save_file

g = torch.Generator().manual_seed(0)
tensors = {
    "a.f16.odd": torch.randn(3, generator=g).half(),
    "b.f32": torch.randn(2, 5, generator=g),
    "c.bf16": torch.randn(4, 3, generator=g).bfloat16(),
    "d.bool": torch.tensor([True, False, True]),
    "e.i64": torch.arange(-3, 3, dtype=torch.int64),
    "f.scalar": torch.tensor(2.5),
    "g.empty": torch.zeros(0, 4),
    "h.u8": torch.arange(0, 7, dtype=torch.uint8),
    "i.f64": torch.randn(3, generator=g).double(),
    "j.i8": torch.tensor([-1, 2], dtype=torch.int8),
    "k.i16": torch.tensor([-300, 300], dtype=torch.int16),
    "l.i32": torch.tensor([1 << 30, -5], dtype=torch.int32),
    "m\u00fcnich\"x": torch.ones(2),
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_written.safetensors")
save_file(tensors, out, metadata={"format": "pt", "k": "v\n\"q\""})
for name, t in tensors.items():
    print(name, t.dtype, list(t.shape), t.reshape(-1)[:4].tolist())
