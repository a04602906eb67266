"""A stand-in for build/cglow built on the PyTorch reference, for testing test_interop.py itself
before the C engine exists (it is never used unless asked for):

    CGLOW="build/venv/bin/python tests/py/ref_cli.py" build/venv/bin/python tests/py/test_interop.py

Implements only: init, info, logprob, grad, sample (the command lines of spec section 8 + grad).
Not a test of cglow: a PASS with this tool only shows that the interop tests and the reference
agree with each other.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python"))
import cglow_torch as ct  # noqa: E402
import torch  # noqa: E402


def main(argv):
    if not argv:
        print("usage: ref_cli.py init|info|logprob|grad|sample ...", file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    ap = argparse.ArgumentParser(prog="ref_cli " + cmd)
    if cmd == "init":
        ap.add_argument("--preset", default="higlow")
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--out", required=True)
        for k in ("levels", "steps", "hidden", "size", "prior-hidden"):
            ap.add_argument("--" + k, type=int)
        ap.add_argument("--prior")
        a = ap.parse_args(rest)
        over = {}
        for k in ("levels", "steps", "hidden"):
            if getattr(a, k) is not None:
                over[k] = getattr(a, k)
        if a.size is not None:
            over["height"] = over["width"] = a.size
        if a.prior:
            over["prior"] = a.prior
        ct.save(a.out, ct.init_model(ct.make_config(**over), seed=a.seed))
        return 0
    if cmd == "info":
        ap.add_argument("--model", required=True)
        a = ap.parse_args(rest)
        m = ct.load(a.model)
        print(json.dumps(m.config), sum(v.numel() for v in m.params.values()), "tensors values")
        return 0
    if cmd in ("logprob", "grad"):
        ap.add_argument("--model", required=True)
        ap.add_argument("--maps", required=True)
        ap.add_argument("--cond", required=True)
        ap.add_argument("--out", required=True)
        ap.add_argument("--space", default="model", choices=["model", "log10"])
        a = ap.parse_args(rest)
        m = ct.load(a.model, dtype=torch.float32)
        maps, theta = np.load(a.maps), np.load(a.cond)
        if cmd == "logprob":
            r = ct.evaluate(m, maps, theta)
            np.save(a.out, np.asarray(r["logprob_" + a.space], np.float64))
        else:
            loss, g = m.loss_and_grads(ct.preprocess_maps(maps, m.data, m.dtype), ct.preprocess_cond(theta, m.data, m.dtype))
            ct.write_safetensors(a.out, {k: ct.to_numpy(v) for k, v in g.items()}, {"loss": repr(loss)})
            print("loss %.9g" % loss)
        return 0
    if cmd == "sample":
        ap.add_argument("--model", required=True)
        ap.add_argument("--cond", required=True)
        ap.add_argument("--n-per-cond", type=int, default=1)
        ap.add_argument("--temperature", type=float, default=1.0)
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--out", required=True)
        ap.add_argument("--units", default="log10", choices=["log10", "linear"])
        a = ap.parse_args(rest)
        m = ct.load(a.model, dtype=torch.float32)
        theta = np.repeat(np.atleast_2d(np.load(a.cond)), a.n_per_cond, axis=0)
        x = m.sample(ct.preprocess_cond(theta, m.data, m.dtype), a.temperature, torch.Generator().manual_seed(a.seed))
        np.save(a.out, ct.postprocess(x, m.data, a.units).astype(np.float32))
        return 0
    print("unknown command %r" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
