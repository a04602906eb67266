"""PyTorch timing of the same 30x30 grid posterior as bench_science flow: one 64x64 map, all G*G
conditions in one batch through python/cglow_torch.py (the PyTorch reference of the cglow model).
usage: CGLOW_BENCH_SAVE=/tmp/b build/bench/bench_science flow 30
       build/venv/bin/python bench/torch_posterior.py /tmp/b [G] [threads]"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import cglow_torch as ct  # noqa: E402

d = sys.argv[1]
G = int(sys.argv[2]) if len(sys.argv) > 2 else 30
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
model = ct.load(os.path.join(d, "model.safetensors"), dtype=torch.float32)
data = model.data
maps = np.load(os.path.join(d, "map.npy"))
lo, hi = np.array(data["cond_lo"]), np.array(data["cond_hi"])
om = lo[0] + (hi[0] - lo[0]) * (np.arange(G) + 0.5) / G
s8 = lo[1] + (hi[1] - lo[1]) * (np.arange(G) + 0.5) / G
theta = np.array([[a, b] for a in om for b in s8])
x = ct.preprocess_maps(maps, data, dtype=torch.float32).repeat(G * G, 1, 1, 1)
c = ct.preprocess_cond(theta, data, dtype=torch.float32)
with torch.no_grad():
    model.forward(x[:2], c[:2])  # warm-up
    t0 = time.time()
    out = model.forward(x, c)
    dt = time.time() - t0
print("pytorch %s float32: %dx%d posterior of one 64x64 map: %.2f s (%d threads); logp[0] %.4f" %
      (torch.__version__, G, G, dt, torch.get_num_threads(), float(out.logp[0])))
