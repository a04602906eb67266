"""cglow pk --binning pylians against the official Pylians3 Pk_plane(field, 25.0, 'None', 1) and
against a numpy FFT estimate, on random asymmetric fields (n = 64, 32 and odd 33).
The fields go in with --field raw (the array values are the field, no log10)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

CGLOW = os.environ.get("CGLOW", "build/cglow")
BOX = 25.0
fails = 0


def report(name, ok, detail=""):
    global fails
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        fails += 1


def cglow_pk(field, tmp, binning="pylians"):
    x = os.path.join(tmp, "f.npy")
    out = os.path.join(tmp, "pk.json")
    np.save(x, field[None].astype(np.float32))
    r = subprocess.run([CGLOW, "pk", "--maps", x, "--field", "raw", "--binning", binning, "--box", str(BOX),
                        "--out", out, "--threads", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("cglow pk failed: " + r.stderr.strip())
    with open(out) as f:
        return json.load(f)


def numpy_pk(field):
    """Pylians' convention written with numpy: half plane (rfft2), rows ky = 0 and ky = n/2 keep
    kx >= 0, bin int(|k|/kF), k = mean |k|, P = (box/n^2)^2 |F|^2."""
    n = field.shape[0]
    F = np.fft.rfft2(field.astype(np.float64))
    kx = np.arange(n)
    kx = np.where(kx > n // 2, kx - n, kx)[:, None] * np.ones((1, n // 2 + 1))
    ky = np.arange(n // 2 + 1)[None, :] * np.ones((n, 1))
    keep = np.ones_like(kx, dtype=bool)
    edge = (ky == 0) | ((ky == n // 2) & (n % 2 == 0))
    keep &= ~(edge & (kx < 0))
    k = np.sqrt(kx ** 2 + ky ** 2)
    b = k.astype(int)
    kmax = int(np.sqrt(2 * (n // 2) ** 2))
    keep &= (b >= 1) & (b <= kmax)
    p = np.abs(F) ** 2 * (BOX / n ** 2) ** 2
    cnt = np.bincount(b[keep], minlength=kmax + 1)[1:]
    ks = np.bincount(b[keep], weights=k[keep], minlength=kmax + 1)[1:]
    ps = np.bincount(b[keep], weights=p[keep], minlength=kmax + 1)[1:]
    nz = cnt > 0
    return ks[nz] / cnt[nz] * 2 * np.pi / BOX, cnt[nz], ps[nz] / cnt[nz]


def numpy_pk_higlow(field):
    """HIGlow binning with numpy: all n^2 modes (fft2), bin round(|k|/kF), k = bin kF, empty bins out."""
    n = field.shape[0]
    F = np.fft.fft2(field.astype(np.float64))
    f = np.fft.fftfreq(n) * n
    k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    b = np.rint(k).astype(int)
    p = np.abs(F) ** 2 * (BOX / n ** 2) ** 2
    keep = (b >= 1) & (b <= n - 1)
    cnt = np.bincount(b[keep], minlength=n)[1:]
    ps = np.bincount(b[keep], weights=p[keep], minlength=n)[1:]
    nz = cnt > 0
    return (np.arange(1, n)[nz]) * 2 * np.pi / BOX, cnt[nz], ps[nz] / cnt[nz]


def main():
    try:
        import Pk_library as PKL
    except Exception as e:  # noqa: BLE001
        PKL = None
        report("pylians_import", False, "Pylians3 (pip pylians) is not importable: %s" % e)
    rng = np.random.default_rng(2211)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (64, 32, 33):
            i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            # Asymmetric: white noise + an x-gradient + a tilted wave, so transposes or sign errors show.
            field = (rng.normal(size=(n, n)) + 0.02 * i + 0.5 * np.cos(2 * np.pi * (3 * i + 1 * j) / n)).astype(np.float32)
            c = cglow_pk(field, tmp)
            ck, cn, cp = np.array(c["k"]), np.array(c["counts"]), np.array(c["mean"])
            nk, nn, npk = numpy_pk(field)
            ok = len(ck) == len(nk) and np.array_equal(cn, nn) and np.allclose(ck, nk, rtol=1e-12) and np.allclose(cp, npk, rtol=1e-4)
            report("numpy_fft_n%d" % n, ok, "bins %d vs %d, max rel dP %.3g" % (len(ck), len(nk),
                   np.max(np.abs(cp / npk - 1)) if len(ck) == len(nk) else -1))
            h = cglow_pk(field, tmp, "higlow")
            hk, hn, hp = np.array(h["k"]), np.array(h["counts"]), np.array(h["mean"])
            rk, rn, rp = numpy_pk_higlow(field)
            ok = len(hk) == len(rk) and np.array_equal(hn, rn) and np.allclose(hk, rk, rtol=1e-12) and np.allclose(hp, rp, rtol=1e-4)
            report("numpy_higlow_n%d" % n, ok, "bins %d vs %d" % (len(hk), len(rk)))
            if PKL is None:
                continue
            if n % 2 == 1:
                # Pylians' FFT2Dr_f is written for even grids; report, do not fail, if it refuses.
                try:
                    pk = PKL.Pk_plane(field, BOX, 'None', 1, verbose=False)
                except Exception as e:  # noqa: BLE001
                    print("SKIP pylians_n%d (Pylians3 refused an odd grid: %s)" % (n, e))
                    continue
            else:
                pk = PKL.Pk_plane(field, BOX, 'None', 1, verbose=False)
            pk_k, pk_n, pk_p = np.asarray(pk.k), np.asarray(pk.Nmodes), np.asarray(pk.Pk)
            same_len = len(pk_k) == len(ck)
            ok = (same_len and np.array_equal(pk_n, cn) and np.allclose(pk_k, ck, rtol=1e-10)
                  and np.allclose(pk_p, cp, rtol=1e-4))
            detail = "bins %d vs %d" % (len(pk_k), len(ck))
            if same_len:
                detail += ", counts equal %s, max rel dk %.3g, max rel dP %.3g" % (
                    np.array_equal(pk_n, cn), np.max(np.abs(pk_k / ck - 1)), np.max(np.abs(pk_p / cp - 1)))
            report("pylians_n%d" % n, ok, detail)
            print("   n=%d: %s" % (n, detail))
    print("%d failed" % fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
