"""numpy interoperability of cglow's .npy files, and an independent numpy evaluation of the exact
synthetic log-likelihood (model.md section 7). Run from the repository root; prints PASS/FAIL lines."""
import os
import subprocess
import sys
import tempfile

import numpy as np

CGLOW = os.environ.get("CGLOW_PY_CGLOW", "build/cglow")
failed = 0


def report(name, ok, why=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
    failed += 0 if ok else 1


def cglow(*args):
    p = subprocess.run([CGLOW, *args], capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def exact_loglike(maps, theta, box=25.0, beta=0.3):
    """log p(u | theta) of section 7, written independently with numpy's FFT."""
    n = maps.shape[-1]
    kf = 2 * np.pi / box
    f = np.fft.fftfreq(n) * n
    k = kf * np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)

    def transfer(q):
        a = 2.34 * q
        return np.log1p(a) / a * (1 + 3.89 * q + (16.1 * q) ** 2 + (5.46 * q) ** 3 + (6.71 * q) ** 4) ** -0.25

    out = []
    for m, (om, s8) in zip(maps.reshape(len(maps), n, n), theta):
        gam = 0.67 * om
        kk = k.copy()
        kk[0, 0] = kf
        shape = kk * transfer(kk / gam) ** 2
        amp = box**2 * (1.25 * s8) ** 2 / (shape.sum() - shape[0, 0])
        lam = n * n * amp * shape / box**2
        u = np.log10(m.astype(np.float64))
        g = np.log1p(beta * (u - (4.8 + 2.5 * (om - 0.3)))) / beta
        F = np.fft.fft2(g)
        out.append(-0.5 * np.sum(np.abs(F) ** 2 / (n * n * lam)) - 0.5 * np.sum(np.log(2 * np.pi * lam)) - beta * g.sum())
    return np.array(out)


with tempfile.TemporaryDirectory(dir=os.environ.get("CGLOW_TEST_TMP")) as t:
    X, P = os.path.join(t, "x.npy"), os.path.join(t, "p.txt")
    rc, err = cglow("synth", "--sims", "4", "--maps-per-sim", "3", "--size", "16", "--seed", "3", "--out-maps", X, "--out-params", P)
    report("synth-for-numpy", rc == 0, err)
    with open(X, "rb") as fh:
        version = np.lib.format.read_magic(fh)
    x = np.load(X)
    report("numpy-loads-cglow-maps", x.shape == (12, 16, 16) and x.dtype == np.dtype("<f4") and version == (1, 0)
           and np.all(np.isfinite(x)) and np.all(x > 0), f"{x.shape} {x.dtype} {version}")
    table = np.loadtxt(P)
    report("numpy-loads-cglow-table", table.shape == (4, 6) and np.all((table[:, 0] >= 0.1) & (table[:, 0] <= 0.5)), str(table.shape))
    u = np.log10(x.astype(np.float64))
    report("maps-look-like-camels", 3 < u.mean() < 7 and 0.3 < u.std() < 3, f"mean {u.mean()} std {u.std()}")

    LL = os.path.join(t, "ll.npy")
    POST = os.path.join(t, "post.npy")
    rc, err = cglow("synth-loglike", "--maps", X, "--params", P, "--out", LL, "--grid", "5", "--out-posterior", POST)
    ll = np.load(LL)
    post = np.load(POST)
    report("numpy-loads-cglow-loglike", rc == 0 and ll.shape == (12,) and ll.dtype == np.dtype("<f8"), err)
    report("numpy-loads-cglow-posterior", post.shape == (12, 5, 5) and np.allclose(post.sum(axis=(1, 2)), 1), str(post.shape))
    want = exact_loglike(x, np.repeat(table[:, :2], 3, axis=0))
    report("loglike-matches-numpy", np.allclose(ll, want, rtol=1e-9, atol=0), f"max rel {np.max(np.abs(ll / want - 1))}")

    # numpy-written files of every version and dtype, read by cglow: the same log-likelihoods.
    theta = np.repeat(table[:, :2], 3, axis=0)
    for ver in [(1, 0), (2, 0), (3, 0)]:
        for dt in ["<f4", "<f8"]:
            for shape in [(12, 16, 16), (12, 1, 16, 16)]:
                name = f"v{ver[0]}-{dt[1:]}-{len(shape)}d"
                xm, pm, lo = os.path.join(t, name + ".npy"), os.path.join(t, name + "-theta.npy"), os.path.join(t, name + "-ll.npy")
                with open(xm, "wb") as fh:
                    np.lib.format.write_array(fh, x.reshape(shape).astype(dt), version=ver)
                with open(pm, "wb") as fh:
                    np.lib.format.write_array(fh, theta.astype(dt), version=ver)
                rc, err = cglow("synth-loglike", "--maps", xm, "--params", pm, "--out", lo)
                if rc != 0:
                    same = False
                elif dt == "<f8":   # maps and theta exactly as before
                    same = np.array_equal(np.load(lo), ll)
                else:               # theta rounded to float32
                    same = np.allclose(np.load(lo), exact_loglike(x, theta.astype(np.float32).astype(np.float64)), rtol=1e-9)
                report("cglow-reads-numpy-" + name, same, err)

    # What cglow must refuse, written by numpy.
    with np.errstate(all="ignore"):
        bad_arrays = [("fortran", np.asfortranarray(x.astype("<f4").transpose(0, 2, 1))), ("int32", x.astype("<i4")),
                      ("big-endian", x.astype(">f4")), ("float16", x.astype("<f2"))]
    for name, arr in bad_arrays:
        p = os.path.join(t, name + ".npy")
        np.save(p, arr)
        rc, err = cglow("synth-loglike", "--maps", p, "--params", P, "--out", os.path.join(t, "o.npy"))
        report("cglow-refuses-numpy-" + name, rc == 1 and p in err and "\n" not in err, f"exit {rc}: {err}")

sys.exit(1 if failed else 0)
