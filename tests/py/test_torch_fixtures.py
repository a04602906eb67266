"""The PyTorch reference (python/cglow_torch.py) against the fixtures of an independent
implementation of model.md ($CGLOW_SHARED/fixtures, else ../shared/fixtures).

Checks per fixture, in float64: per-map log p in model and log10 space, all latents, the loss
(spec 3) and, for the tiny fixtures, d loss / d tensor of every tensor of grads.safetensors; the
float32 path; the inverse flow; a Python-written checkpoint reloading bit for bit; a fresh init.
One line "PASS name (...)" or "FAIL name (...)" per check; exit status 1 on any failure.
"""
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
import cglow_torch as ct  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("CGLOW_TORCH_THREADS", "1")))
SHARED = os.environ.get("CGLOW_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
FIX = os.path.join(SHARED, "fixtures")

RTOL64 = 1e-9     # float64 reference vs float64 fixtures
RTOL32 = 1e-5     # float32 path vs float64 fixtures (log p)
failures = 0


def report(ok, name, detail=""):
    global failures
    if not ok:
        failures += 1
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (" (%s)" % detail) if detail else ""))
    sys.stdout.flush()


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))


def check_close(name, got, ref, rtol):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        report(False, name, "shape %s, fixture %s" % (got.shape, ref.shape))
        return
    e = rel_err(got, ref)
    report(bool(np.all(np.isfinite(got))) and e <= rtol, name, "max rel err %.2e, tol %.0e" % (e, rtol))


def check_fixture(fx):
    d = os.path.join(FIX, fx)
    if not os.path.isdir(d):
        report(False, fx + ".present", "no folder %s" % d)
        return
    try:
        m = ct.load(os.path.join(d, "model.safetensors"))
    except Exception as e:  # noqa: BLE001
        report(False, fx + ".load", repr(e))
        return
    tensors, meta = ct.read_safetensors(os.path.join(d, "model.safetensors"))
    want = ct.tensor_shapes(m.config)
    ok = set(tensors) == set(want) and all(tuple(tensors[k].shape) == want[k] for k in want)
    ok = ok and all(tensors[k].dtype == np.float32 for k in tensors)
    report(ok, fx + ".names_shapes", "%d tensors, spec names and shapes, F32" % len(tensors))

    maps = np.load(os.path.join(d, "maps.npy"))
    theta = np.load(os.path.join(d, "cond.npy"))
    r = ct.evaluate(m, maps, theta)
    for k in ("logprob_model", "logprob_log10", "latents", "loss"):
        check_close(fx + "." + k, r[k], np.load(os.path.join(d, k + ".npy")), RTOL64)

    x = ct.preprocess_maps(maps, m.data)
    c = ct.preprocess_cond(theta, m.data)
    gpath = os.path.join(d, "grads.safetensors")
    if os.path.exists(gpath):
        ref, _ = ct.read_safetensors(gpath)
        loss, g = m.loss_and_grads(x, c)
        if set(ref) != set(g):
            report(False, fx + ".grads", "names differ: %s" % sorted(set(ref) ^ set(g))[:4])
        else:
            total = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in ref.values()))
            worst, wname, nz = 0.0, "", 0
            for k, rv in ref.items():
                gv = ct.to_numpy(g[k])
                if gv.shape != rv.shape:
                    worst, wname = float("inf"), k + " shape"
                    break
                # relative to the tensor's own norm; a zero reference gradient must be zero
                # (relative to the norm of the whole gradient)
                den = max(np.linalg.norm(rv), 1e-12 * total)
                e = float(np.linalg.norm(gv - rv) / den)
                nz += bool(np.any(rv))
                if e > worst:
                    worst, wname = e, k
            report(worst <= RTOL64, fx + ".grads",
                   "%d tensors (%d non-zero), worst rel err %.2e in %s" % (len(ref), nz, worst, wname))

    # float32 path (the one the benchmark uses)
    m32 = ct.load(os.path.join(d, "model.safetensors"), dtype=torch.float32)
    r32 = ct.evaluate(m32, maps, theta)
    ref = np.load(os.path.join(d, "logprob_model.npy"))
    e = float(np.max(np.abs(r32["logprob_model"] - ref) / np.abs(ref)))
    report(e <= RTOL32, fx + ".float32_logprob", "max rel err %.2e, tol %.0e" % (e, RTOL32))

    # the 5 x 5 injector shortcut gives the same numbers
    if min(b[1] for b in m.blocks[:1]) >= 5:
        mf = ct.load(os.path.join(d, "model.safetensors"))
        mf.fast_injector = True
        rf = ct.evaluate(mf, maps, theta)
        e = max(rel_err(rf[k], r[k]) for k in ("logprob_model", "latents"))
        report(e <= 1e-12, fx + ".fast_injector", "max rel err %.2e vs the plain CNN" % e)

    # inverse of the flow: x = f^-1(f(x))
    with torch.no_grad():
        out = m.forward(x, c)
        xr = m.inverse(out.latents, c)
    e = float((xr - x).abs().max())
    report(e <= 1e-8, fx + ".inverse_roundtrip", "max abs err %.2e" % e)

    # a checkpoint written by Python reloads with the same tensors and numbers
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "m.safetensors")
        ct.save(p, m)
        t2, meta2 = ct.read_safetensors(p)
        same = set(t2) == set(tensors) and all(np.array_equal(t2[k], tensors[k]) for k in tensors)
        m2 = ct.load(p)
        r2 = ct.evaluate(m2, maps, theta)
        same = same and np.array_equal(r2["logprob_model"], r["logprob_model"])
        same = same and meta2["config"] and set(ct.json.loads(meta2["config"])) == set(ct.CONFIG_KEYS)
        report(bool(same), fx + ".save_reload", "tensors bit-identical, same log p")


def check_init():
    cfg = ct.make_config(levels=2, steps=2, hidden=4, height=8, width=8)
    m = ct.init_model(cfg, seed=3)
    ok, worst = True, 0.0
    for b, (C, _, _, _) in enumerate(m.blocks):
        for k in range(cfg["steps"]):
            pre = "blocks.%d.steps.%d." % (b, k)
            W = m.invconv_weight(pre, C).detach()
            worst = max(worst, float((W @ W.T - torch.eye(C, dtype=torch.float64)).abs().max()))
            for part in ("injector", "coupling"):
                for t in ("weight", "bias", "scale"):
                    ok = ok and not bool(m.params[pre + part + ".zero." + t].any())
    report(ok and worst < 1e-12, "init.structure", "W orthogonal to %.1e, zeroconvs zero" % worst)
    # at init the injector is the identity: log p of a fresh model is finite and its grads exist
    x = torch.tanh(torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    c = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss, g = m.loss_and_grads(x, c)
    fin = np.isfinite(loss) and all(bool(torch.isfinite(v).all()) for v in g.values())
    report(fin, "init.finite", "loss %.6f" % loss)


def check_fast_injector_grads():
    cfg = ct.make_config(levels=2, steps=2, hidden=4, height=24, width=24)
    m = ct.init_model(cfg, dict(ct.DEFAULT_DATA, mu=4.8), seed=4, nonzero=0.05)
    x = torch.tanh(torch.randn(3, 1, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    c = torch.rand(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    l0, g0 = m.loss_and_grads(x, c)
    m.fast_injector = True
    l1, g1 = m.loss_and_grads(x, c)
    e = max(float((g1[k] - g0[k]).norm() / max(float(g0[k].norm()), 1e-300)) for k in g0 if float(g0[k].norm()) > 0)
    report(abs(l1 - l0) <= 1e-13 * abs(l0) and e <= 1e-10, "fast_injector.grads",
           "loss rel diff %.1e, worst grad rel err %.1e" % (abs(l1 - l0) / abs(l0), e))


def main():
    if not os.path.isdir(FIX):
        report(False, "fixtures.present", "no %s" % FIX)
    else:
        for fx in ("tiny-conditional", "tiny-learned", "higlow-preset"):
            try:
                check_fixture(fx)
            except Exception as e:  # noqa: BLE001
                report(False, fx + ".exception", repr(e))
    check_init()
    check_fast_injector_grads()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
