# Emulates, with numpy on the CPU, the cuBLAS calls of src/kernels/cuda/conv.cu (column-major,
# strided batched), im2col and col2im, and checks them against direct formulas: the layouts of the
# GEMMs are right before any GPU runs them. Keep it in step with conv.cu when a call changes.
#   build/venv/bin/python src/kernels/cuda/gemm_layout_check.py
import numpy as np
rng = np.random.default_rng(0)

def gemm_sb(ta, tb, m, n, k, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch, alpha=1.0):
    for g in range(batch):
        def mat(buf, off, ld, rows, cols):  # column-major rows x cols view
            return np.array([[buf[off + r + c * ld] for c in range(cols)] for r in range(rows)])
        a = mat(A, g * sA, lda, k, m).T if ta == 'T' else mat(A, g * sA, lda, m, k)
        b = mat(B, g * sB, ldb, n, k).T if tb == 'T' else mat(B, g * sB, ldb, k, n)
        c = mat(C, g * sC, ldc, m, n)
        r = alpha * a @ b + beta * c
        for cc in range(n):
            for rr in range(m):
                C[g * sC + rr + cc * ldc] = r[rr, cc]

def im2col(inp, Cin, H, W, G, pad):
    HW = H * W; K = Cin * 9
    col = np.zeros(G * K * HW)
    for idx in range(G * K * HW):
        p = idx % HW; t = idx // HW; k = t % K; g = t // K
        ci, r = divmod(k, 9); ky, kx = divmod(r, 3)
        iy = p // W + ky - 1; ix = p % W + kx - 1
        col[idx] = inp[(g * Cin + ci) * HW + iy * W + ix] if 0 <= iy < H and 0 <= ix < W else pad
    return col

def col2im(dcol, Cin, H, W, G):
    HW = H * W
    din = np.zeros(G * Cin * HW)
    for idx in range(G * Cin * HW):
        p = idx % HW; gc = idx // HW; y = p // W; x = p % W
        acc = 0
        for ky in range(3):
            oy = y - ky + 1
            if oy < 0 or oy >= H: continue
            for kx in range(3):
                ox = x - kx + 1
                if ox < 0 or ox >= W: continue
                acc += dcol[gc * 9 * HW + (ky * 3 + kx) * HW + oy * W + ox]
        din[idx] = acc
    return din

def ref_conv(inp, w, b, Cin, Cout, H, W, G, pad):
    x = inp.reshape(G, Cin, H, W)
    xp = np.full((G, Cin, H + 2, W + 2), pad, dtype=float); xp[:, :, 1:-1, 1:-1] = x
    wr = w.reshape(Cout, Cin, 3, 3)
    out = np.zeros((G, Cout, H, W))
    for ky in range(3):
        for kx in range(3):
            out += np.einsum('oi,gihw->gohw', wr[:, :, ky, kx], xp[:, :, ky:ky + H, kx:kx + W])
    return out + b[None, :, None, None]

for (Cin, Cout, H, W, G, pad) in [(2, 3, 3, 4, 2, 1.0), (1, 2, 1, 1, 3, 0.0), (3, 2, 5, 2, 1, 0.5)]:
    HW = H * W; K = Cin * 9
    inp = rng.standard_normal(G * Cin * HW); w = rng.standard_normal(Cout * K); b = rng.standard_normal(Cout)
    # forward
    col = im2col(inp, Cin, H, W, G, pad)
    out = np.repeat(b, HW); out = np.tile(out, G).astype(float)
    gemm_sb('N', 'N', HW, Cout, K, col, HW, K * HW, w, K, 0, 1.0, out, HW, Cout * HW, G)
    ref = ref_conv(inp, w, b, Cin, Cout, H, W, G, pad).ravel()
    assert np.allclose(out, ref), ("fwd", Cin, Cout, H, W)
    # backward via autodiff-free formulas: loss = sum(dout * out)
    dout = rng.standard_normal(G * Cout * HW)
    part = np.zeros(G * Cout * K)
    gemm_sb('T', 'N', K, Cout, HW, col, HW, K * HW, dout, HW, Cout * HW, 0.0, part, K, Cout * K, G)
    dw = part.reshape(G, Cout * K).sum(0)
    eps = 1e-6
    # numeric check of dw and din by linearity: d/dw sum(dout*conv(w)) = conv with unit weights
    dw_ref = np.zeros(Cout * K)
    for i in range(Cout * K):
        e = np.zeros(Cout * K); e[i] = 1
        dw_ref[i] = np.sum(dout * (ref_conv(inp, e, np.zeros(Cout), Cin, Cout, H, W, G, pad).ravel()))
    assert np.allclose(dw, dw_ref), ("dw", Cin, Cout)
    dcol = np.zeros(G * K * HW)
    gemm_sb('N', 'T', HW, K, Cout, dout, HW, Cout * HW, w, K, 0, 0.0, dcol, HW, K * HW, G)
    din = col2im(dcol, Cin, H, W, G)
    din_ref = np.zeros(G * Cin * HW)
    for i in range(G * Cin * HW):
        e = np.zeros(G * Cin * HW); e[i] = 1
        din_ref[i] = np.sum(dout * ref_conv(e, w, np.zeros(Cout), Cin, Cout, H, W, G, 0.0).ravel())
    assert np.allclose(din, din_ref), ("din", Cin, Cout)
print("conv3x3 gemm parameterisation OK")

for (Cin, Cout, HW, G) in [(3, 2, 5, 2), (2, 4, 1, 3)]:
    inp = rng.standard_normal(G * Cin * HW); w = rng.standard_normal(Cout * Cin); b = rng.standard_normal(Cout)
    out = np.tile(np.repeat(b, HW), G).astype(float)
    gemm_sb('N', 'N', HW, Cout, Cin, inp, HW, Cin * HW, w, Cin, 0, 1.0, out, HW, Cout * HW, G)
    X = inp.reshape(G, Cin, HW); Wm = w.reshape(Cout, Cin)
    assert np.allclose(out, (np.einsum('oi,gip->gop', Wm, X) + b[None, :, None]).ravel())
    dout = rng.standard_normal(G * Cout * HW); D = dout.reshape(G, Cout, HW)
    part = np.zeros(G * Cout * Cin)
    gemm_sb('T', 'N', Cin, Cout, HW, inp, HW, Cin * HW, dout, HW, Cout * HW, 0.0, part, Cin, Cout * Cin, G)
    assert np.allclose(part.reshape(G, -1).sum(0), np.einsum('gop,gip->oi', D, X).ravel())
    din = np.zeros(G * Cin * HW)
    gemm_sb('N', 'T', HW, Cin, Cout, dout, HW, Cout * HW, w, Cin, 0, 0.0, din, HW, Cin * HW, G)
    assert np.allclose(din, np.einsum('oi,gop->gip', Wm, D).ravel())
print("conv1x1 OK")

for (M, K, G) in [(3, 2, 4), (5, 7, 1)]:
    inp = rng.standard_normal(G * K); W = rng.standard_normal(M * K); b = rng.standard_normal(M)
    out = np.tile(b, G).astype(float)
    gemm_sb('T', 'N', M, G, K, W, K, 0, inp, K, 0, 1.0, out, M, 0, 1)
    Wm = W.reshape(M, K); X = inp.reshape(G, K)
    assert np.allclose(out, (X @ Wm.T + b).ravel())
    dout = rng.standard_normal(G * M); D = dout.reshape(G, M)
    dW = np.zeros(M * K)
    gemm_sb('N', 'T', K, M, G, inp, K, 0, dout, M, 0, 1.0, dW, K, 0, 1)
    assert np.allclose(dW, (D.T @ X).ravel())
    din = np.zeros(G * K)
    gemm_sb('N', 'N', K, G, M, W, K, 0, dout, M, 0, 0.0, din, K, 0, 1)
    assert np.allclose(din, (D @ Wm).ravel())
print("linear OK")
