"""PyTorch reference implementation of the cglow model (../shared/docs/model.md, format version 1).

A conditional Glow (HIGlow, arXiv 2211.12724) written directly from the specification, for
checking the C engine and for loading cglow checkpoints in Python:

    import cglow_torch as ct
    m = ct.load("model.safetensors")                  # float64 by default; dtype=torch.float32 too
    x = ct.preprocess_maps(raw_maps, m.data)          # raw linear maps -> model space (N,1,H,W)
    c = ct.preprocess_cond(raw_params, m.data)        # raw (Omega_m, sigma_8) -> [-1, 1]^P
    out = m.forward(x, c)                             # out.logp (N,), out.latents [z_0 .. z_L]
    lp10 = out.logp + ct.log10_jacobian(x, m.data)    # log p in log10 space
    loss, grads = m.loss_and_grads(x, c)              # nats/pixel and d loss / d tensor by name

Only torch and numpy are needed; safetensors is used when installed (a small reader/writer of the
format is built in otherwise). numpy <-> torch conversions go through raw bytes, so the module
works even where torch's numpy bridge is broken (e.g. Debian's torch 1.13 with numpy 2).
"""
import ctypes
import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F


def _quiet_numpy_bridge_check():
    """Debian's torch 1.13 was built against numpy 1.x; with numpy 2 its numpy bridge fails once,
    noisily, on first use. This module does not use the bridge: trigger that check quietly."""
    import contextlib
    import io
    import warnings
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.device("cpu")


_quiet_numpy_bridge_check()

FORMAT = "cglow"
FORMAT_VERSION = "1"
CONFIG_KEYS = ["in_channels", "height", "width", "levels", "steps", "hidden", "cond_features",
               "prior", "prior_hidden", "coupling_clamp"]
DATA_KEYS = ["downsample", "floor", "mu", "sigma", "squash", "cond_names", "cond_lo", "cond_hi"]

PRESET_HIGLOW = dict(in_channels=1, height=64, width=64, levels=6, steps=20, hidden=16,
                     cond_features=2, prior="conditional", prior_hidden=8, coupling_clamp=0.5)
DEFAULT_DATA = dict(downsample=1, floor=1e-8, mu=0.0, sigma=1.0, squash="sigmoid",
                    cond_names=["Omega_m", "sigma_8"], cond_lo=[0.1, 0.6], cond_hi=[0.5, 1.0])

INJ_LOG_SCALE_MIN = math.log(1e-3)
INJ_LOG_SCALE_MAX = 5.0
PRIOR_LOGVAR_MIN = -3.0
PRIOR_LOGVAR_MAX = 5.0

_NP_OF_TORCH = {torch.float64: np.float64, torch.float32: np.float32, torch.int64: np.int64,
                torch.int32: np.int32, torch.uint8: np.uint8}


# ----------------------------------------------------------------------------------------------
# numpy <-> torch without torch's numpy bridge
def to_torch(a, dtype=torch.float64, device="cpu"):
    """A numpy array (or anything np.asarray takes) as a new torch tensor of `dtype`."""
    a = np.ascontiguousarray(np.asarray(a, dtype=_NP_OF_TORCH[dtype]))
    if a.size == 0:
        return torch.zeros(a.shape, dtype=dtype, device=device)
    t = torch.frombuffer(bytearray(a.tobytes()), dtype=dtype).reshape(a.shape)
    return t.to(device)


def to_numpy(t):
    """A torch tensor as a new numpy array (same dtype)."""
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return np.zeros(tuple(t.shape), dtype=_NP_OF_TORCH[t.dtype])
    try:
        return t.numpy().copy()
    except (RuntimeError, TypeError):
        raw = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
        return np.frombuffer(raw, dtype=_NP_OF_TORCH[t.dtype]).reshape(tuple(t.shape)).copy()


# ----------------------------------------------------------------------------------------------
# safetensors I/O (the real package when available)
def read_safetensors(path):
    """(tensors: dict name -> numpy array, metadata: dict str -> str)."""
    try:
        from safetensors import safe_open
        out = {}
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                out[k] = f.get_tensor(k)
        return out, meta
    except ImportError:
        pass
    dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for k, v in header.items():
        b0, b1 = v["data_offsets"]
        out[k] = np.frombuffer(blob[base + b0:base + b1], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata):
    """Write numpy arrays with string metadata (safetensors.numpy.save_file when available)."""
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    try:
        from safetensors.numpy import save_file
        save_file(tensors, str(path), metadata=metadata)
        return
    except ImportError:
        pass
    dt = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64",
          np.dtype("<i4"): "I32", np.dtype("u1"): "U8"}
    header = {"__metadata__": dict(metadata)}
    off = 0
    blobs = []
    for k in sorted(tensors):
        a = tensors[k]
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------------------------
# Architecture bookkeeping
def block_shapes(cfg):
    """Per block b = 0..L: (C inside the block, H_b, W_b, latent shape (C_z, H_b, W_b))."""
    C, H, W = cfg["in_channels"], cfg["height"], cfg["width"]
    L = cfg["levels"]
    if H % (1 << L) or W % (1 << L):
        raise ValueError("height %d and width %d must be divisible by 2^levels = %d" % (H, W, 1 << L))
    out = []
    for b in range(L):
        C, H, W = 4 * C, H // 2, W // 2
        out.append((C, H, W, (C - C // 2, H, W)))
        C = C // 2
    out.append((C, H, W, (C, H, W)))
    return out


def tensor_shapes(cfg):
    """dict name -> shape of every tensor of a checkpoint with this config (spec section 4)."""
    Hd, P, Hc = cfg["hidden"], cfg["cond_features"], cfg["prior_hidden"]
    shapes = {}
    for b, (C, Hb, Wb, zs) in enumerate(block_shapes(cfg)):
        for k in range(cfg["steps"]):
            s = "blocks.%d.steps.%d." % (b, k)
            for n in ("perm", "lower", "upper"):
                shapes[s + "invconv." + n] = (C, C)
            shapes[s + "invconv.log_s"] = (C,)
            shapes[s + "invconv.sign"] = (C,)
            for part, cin, cout in (("injector", P, 2 * C), ("coupling", C // 2 + P, C)):
                shapes[s + part + ".conv1.weight"] = (Hd, cin, 3, 3)
                shapes[s + part + ".conv1.bias"] = (Hd,)
                shapes[s + part + ".conv2.weight"] = (Hd, Hd, 1, 1)
                shapes[s + part + ".conv2.bias"] = (Hd,)
                shapes[s + part + ".zero.weight"] = (cout, Hd, 3, 3)
                shapes[s + part + ".zero.bias"] = (cout,)
                shapes[s + part + ".zero.scale"] = (cout,)
        D = zs[0] * zs[1] * zs[2]
        p = "blocks.%d.prior." % b
        if cfg["prior"] == "conditional":
            for mv in ("mean", "logvar"):
                for fc, (o, i) in (("fc1", (Hc, P)), ("fc2", (Hc, Hc)), ("fc3", (D, Hc))):
                    shapes[p + mv + "." + fc + ".weight"] = (o, i)
                    shapes[p + mv + "." + fc + ".bias"] = (o,)
        elif cfg["prior"] == "learned":
            shapes[p + "mean"] = tuple(zs)
            shapes[p + "logvar"] = tuple(zs)
        else:
            raise ValueError("unknown prior %r" % cfg["prior"])
    return shapes


FIXED_SUFFIXES = (".invconv.perm", ".invconv.sign")


def is_trainable(name):
    return not name.endswith(FIXED_SUFFIXES)


def straight_through_clamp(x, lo, hi):
    """Forward: clamp(x, lo, hi); backward: identity."""
    return x + (x.clamp(lo, hi) - x).detach()


def squeeze2(x):
    """out[n, c*4 + dy*2 + dx, i, j] = in[n, c, 2i + dy, 2j + dx]."""
    N, C, H, W = x.shape
    x = x.reshape(N, C, H // 2, 2, W // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(N, C * 4, H // 2, W // 2)


def unsqueeze2(x):
    N, C4, H, W = x.shape
    x = x.reshape(N, C4 // 4, 2, 2, H, W)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(N, C4 // 4, H * 2, W * 2)


def zeroconv(x, w, b, scale):
    """Pad with the value 1, conv3x3 valid, times exp(3 * scale) per output channel."""
    y = F.conv2d(F.pad(x, (1, 1, 1, 1), value=1.0), w, b)
    return y * torch.exp(3.0 * scale).view(1, -1, 1, 1)


class Output:
    """Result of Model.forward: logp (N,) in model space, latents [z_0 .. z_L], logdet (N,)."""

    def __init__(self, logp, latents, logdet, logprior):
        self.logp, self.latents, self.logdet, self.logprior = logp, latents, logdet, logprior

    def flat_latents(self):
        """(N, D) all latents, block order, C order inside a block."""
        return torch.cat([z.reshape(z.shape[0], -1) for z in self.latents], dim=1)


class Model:
    """The cglow model: config dict, data dict and a dict of parameter tensors named as spec 4."""

    def __init__(self, config, data, params, dtype=torch.float64, device="cpu"):
        cfg = dict(config)
        for k in CONFIG_KEYS:
            if k not in cfg:
                raise ValueError("config lacks key %r" % k)
        self.config = cfg
        self.data = dict(data)
        self.dtype, self.device = dtype, torch.device(device)
        self.blocks = block_shapes(cfg)
        want = tensor_shapes(cfg)
        missing = sorted(set(want) - set(params))
        extra = sorted(set(params) - set(want))
        if missing or extra:
            raise ValueError("tensors do not match config: missing %s, extra %s" % (missing[:5], extra[:5]))
        self.params = {}
        for k, shp in want.items():
            v = params[k]
            t = v.detach().to(dtype=dtype, device=self.device) if isinstance(v, torch.Tensor) \
                else to_torch(v, dtype, self.device)
            if tuple(t.shape) != tuple(shp):
                raise ValueError("%s has shape %s, config wants %s" % (k, tuple(t.shape), shp))
            t = t.clone().contiguous()
            t.requires_grad_(is_trainable(k))
            self.params[k] = t
        self._masks = {}
        self._relu_margins = None
        # compute the injector CNN on a 5 x 5 map and expand it (same numbers, ~half the FLOPs)
        self.fast_injector = False

    # -- parameters ---------------------------------------------------------------------------
    def trainable(self):
        return [(k, v) for k, v in self.params.items() if v.requires_grad]

    def to(self, dtype=None, device=None):
        m = Model(self.config, self.data, self.params, dtype or self.dtype, device or self.device)
        m.fast_injector = self.fast_injector
        return m

    def _p(self, name):
        return self.params[name]

    def _tri_masks(self, C):
        if C not in self._masks:
            ones = torch.ones(C, C, dtype=self.dtype, device=self.device)
            self._masks[C] = (torch.tril(ones, -1), torch.triu(ones, 1),
                              torch.eye(C, dtype=self.dtype, device=self.device))
        return self._masks[C]

    def invconv_weight(self, pre, C):
        ml, mu, eye = self._tri_masks(C)
        p = lambda n: self.params[pre + "invconv." + n]
        Lm = p("lower") * ml + eye
        Um = p("upper") * mu + torch.diag(p("sign") * torch.exp(p("log_s")))
        return p("perm") @ Lm @ Um

    # -- pieces -------------------------------------------------------------------------------
    def _cmap(self, c, H, W):
        return c.view(c.shape[0], c.shape[1], 1, 1).expand(c.shape[0], c.shape[1], H, W)

    def _pos_index(self, n):
        key = ("pos", n)
        if key not in self._masks:
            idx = torch.full((n,), 2, dtype=torch.long)
            idx[0], idx[1], idx[n - 2], idx[n - 1] = 0, 1, 3, 4
            self._masks[key] = idx.to(self.device)
        return self._masks[key]

    def _cnn(self, pre, inp):
        p = self.params
        h1 = F.conv2d(inp, p[pre + "conv1.weight"], p[pre + "conv1.bias"], padding=1)
        h2 = F.conv2d(F.relu(h1), p[pre + "conv2.weight"], p[pre + "conv2.bias"])
        if self._relu_margins is not None:
            m = min(float(h1.detach().abs().min()), float(h2.detach().abs().min()))
            self._relu_margins[pre] = min(m, self._relu_margins.get(pre, m))
        return zeroconv(F.relu(h2), p[pre + "zero.weight"], p[pre + "zero.bias"], p[pre + "zero.scale"])

    def relu_margins(self, x, c):
        """dict CNN prefix ("blocks.b.steps.k.coupling.") -> smallest |pre-activation| of its two
        ReLUs over the batch. A margin within rounding (e.g. < 1e-6 in float64 for a float32
        engine) is a ReLU tie: another implementation may take the other side, which changes
        that CNN's conv1/conv2 gradients (not a bug)."""
        self._relu_margins = {}
        try:
            with torch.no_grad():
                self.forward(x, c)
            return dict(self._relu_margins)
        finally:
            self._relu_margins = None

    def injector(self, pre, C, cmap):
        N, P, H, W = cmap.shape
        if self.fast_injector and H >= 5 and W >= 5:
            # The CNN reads a constant map: its output depends only on c and on the position
            # class of each row and column (0, 1, interior, H-2, H-1). Compute it on a 5 x 5 map
            # and expand (spec 2.2 allows this; the numbers are the same up to rounding).
            o = self._cnn(pre + "injector.", cmap[:, :, :5, :5])
            o = o.index_select(2, self._pos_index(H)).index_select(3, self._pos_index(W))
        else:
            o = self._cnn(pre + "injector.", cmap)
        bias, ls = o[:, :C], o[:, C:]
        ls = straight_through_clamp(ls, INJ_LOG_SCALE_MIN, INJ_LOG_SCALE_MAX)
        return bias, ls

    def coupling_st(self, pre, xa, cmap):
        o = self._cnn(pre + "coupling.", torch.cat([xa, cmap], dim=1))
        h = xa.shape[1]
        log_s, t = o[:, :h], o[:, h:]
        clamp = float(self.config["coupling_clamp"])
        s = (1.0 - clamp) * torch.sigmoid(log_s + 2.0) + clamp
        return s, t

    def step_forward(self, b, k, x, cmap):
        pre = "blocks.%d.steps.%d." % (b, k)
        N, C, H, W = x.shape
        # invertible 1x1 convolution
        Wm = self.invconv_weight(pre, C)
        x = torch.einsum("oi,nihw->nohw", Wm, x)
        logdet = (H * W) * self.params[pre + "invconv.log_s"].sum()
        logdet = logdet.expand(N)
        # affine injector
        bias, ls = self.injector(pre, C, cmap)
        x = x * torch.exp(ls) + bias
        logdet = logdet + ls.reshape(N, -1).sum(1)
        # coupling
        xa, xb = x[:, :C // 2], x[:, C // 2:]
        s, t = self.coupling_st(pre, xa, cmap)
        yb = (xb + t) * s
        logdet = logdet + torch.log(s).reshape(N, -1).sum(1)
        return torch.cat([xa, yb], dim=1), logdet

    def step_inverse(self, b, k, y, cmap):
        pre = "blocks.%d.steps.%d." % (b, k)
        C = y.shape[1]
        ya, yb = y[:, :C // 2], y[:, C // 2:]
        s, t = self.coupling_st(pre, ya, cmap)
        x = torch.cat([ya, yb / s - t], dim=1)
        bias, ls = self.injector(pre, C, cmap)
        x = (x - bias) * torch.exp(-ls)
        Wi = torch.linalg.inv(self.invconv_weight(pre, C))
        return torch.einsum("oi,nihw->nohw", Wi, x)

    def prior_params(self, b, c, zshape):
        """mean, logvar of block b's prior, shaped (N, *zshape)."""
        N = c.shape[0]
        pre = "blocks.%d.prior." % b
        p = self.params
        if self.config["prior"] == "conditional":
            def mlp(w):
                h = F.relu(F.linear(c, p[w + ".fc1.weight"], p[w + ".fc1.bias"]))
                h = F.relu(F.linear(h, p[w + ".fc2.weight"], p[w + ".fc2.bias"]))
                return F.linear(h, p[w + ".fc3.weight"], p[w + ".fc3.bias"])
            mean = mlp(pre + "mean").reshape(N, *zshape)
            logvar = mlp(pre + "logvar").reshape(N, *zshape)
            logvar = straight_through_clamp(logvar, PRIOR_LOGVAR_MIN, PRIOR_LOGVAR_MAX)
        else:
            mean = p[pre + "mean"].unsqueeze(0).expand(N, *zshape)
            logvar = p[pre + "logvar"].unsqueeze(0).expand(N, *zshape)
        return mean, logvar

    def prior_logp(self, b, z, c):
        N = z.shape[0]
        mean, logvar = self.prior_params(b, c, tuple(z.shape[1:]))
        D = z[0].numel()
        q = ((z - mean) ** 2 * torch.exp(-logvar)).reshape(N, -1).sum(1)
        return -0.5 * q - 0.5 * D * math.log(2 * math.pi) - 0.5 * logvar.reshape(N, -1).sum(1)

    # -- the flow -----------------------------------------------------------------------------
    def forward(self, x, c):
        """x (N, C0, H, W) in model space, c (N, P) scaled condition -> Output."""
        x = x.to(dtype=self.dtype, device=self.device)
        c = c.to(dtype=self.dtype, device=self.device)
        N = x.shape[0]
        L, K = self.config["levels"], self.config["steps"]
        h = x
        logdet = torch.zeros(N, dtype=self.dtype, device=self.device)
        logprior = torch.zeros(N, dtype=self.dtype, device=self.device)
        latents = []
        for b in range(L + 1):
            if b < L:
                h = squeeze2(h)
            cmap = self._cmap(c, h.shape[2], h.shape[3])
            for k in range(K):
                h, ld = self.step_forward(b, k, h, cmap)
                logdet = logdet + ld
            if b < L:
                C = h.shape[1]
                h, z = h[:, :C // 2], h[:, C // 2:]
            else:
                z = h
            latents.append(z)
            logprior = logprior + self.prior_logp(b, z, c)
        return Output(logprior + logdet, latents, logdet, logprior)

    def inverse(self, latents, c):
        """[z_0 .. z_L] and scaled c -> x in model space (N, C0, H, W)."""
        c = c.to(dtype=self.dtype, device=self.device)
        L, K = self.config["levels"], self.config["steps"]
        h = latents[L]
        for b in range(L, -1, -1):
            if b < L:
                h = torch.cat([h, latents[b]], dim=1)
            cmap = self._cmap(c, h.shape[2], h.shape[3])
            for k in range(K - 1, -1, -1):
                h = self.step_inverse(b, k, h, cmap)
            if b < L:
                h = unsqueeze2(h)
        return h

    def loss(self, x, c):
        """Spec section 3: -mean_n log p(x_n | c_n) / (C*H*W), nats per pixel, model space."""
        out = self.forward(x, c)
        D = x[0].numel()
        return -out.logp.mean() / D, out

    def loss_and_grads(self, x, c):
        """(loss float, dict name -> gradient tensor for every tensor; zeros for perm and sign)."""
        for v in self.params.values():
            v.grad = None
        loss, _ = self.loss(x, c)
        loss.backward()
        g = {}
        for k, v in self.params.items():
            g[k] = v.grad.detach().clone() if v.grad is not None else torch.zeros_like(v)
        return float(loss.detach()), g

    @torch.no_grad()
    def sample(self, c, temperature=1.0, generator=None):
        """Spec 2.4: z_b = mean_b(c) + T * exp(logvar_b(c)/2) * eps; returns model-space maps."""
        c = c.to(dtype=self.dtype, device=self.device)
        N = c.shape[0]
        zs = []
        for b, (_, _, _, zshape) in enumerate(self.blocks):
            mean, logvar = self.prior_params(b, c, tuple(zshape))
            eps = torch.randn((N,) + tuple(zshape), generator=generator, dtype=self.dtype,
                              device=self.device)
            zs.append(mean + temperature * torch.exp(logvar / 2) * eps)
        return self.inverse(zs, c)

    # -- files --------------------------------------------------------------------------------
    def state_numpy(self):
        return {k: to_numpy(v).astype(np.float32) for k, v in self.params.items()}

    def save(self, path):
        save(path, self)


# ----------------------------------------------------------------------------------------------
# Preprocessing (spec 1.2, 1.3)
def _as_nchw(maps):
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError("maps must be (N, H, W) or (N, C, H, W), got %s" % (a.shape,))
    return a


def maps_to_log10(maps, data):
    """Raw linear maps -> u = log10(max(map, floor)) (N, C, H, W), after block-mean downsampling."""
    a = _as_nchw(maps)
    f = int(data.get("downsample", 1) or 1)
    if f > 1:
        N, C, H, W = a.shape
        a = a.reshape(N, C, H // f, f, W // f, f).mean(axis=(3, 5))
    floor = data.get("floor", 1e-8)
    if floor is None or floor <= 0:
        bad = np.argwhere(~(a > 0))
        if len(bad):
            raise ValueError("non-positive pixel in map %d and no floor" % bad[0][0])
        return np.log10(a)
    return np.log10(np.maximum(a, floor))


def log10_to_model(u, data):
    d = (np.asarray(u, dtype=np.float64) - float(data["mu"])) / float(data["sigma"])
    sq = data.get("squash", "sigmoid")
    if sq == "sigmoid":
        return np.tanh(d / 2.0)
    if sq == "standard":
        return d
    raise ValueError("unknown squash %r" % sq)


def preprocess_maps(maps, data, dtype=torch.float64, device="cpu"):
    """Raw linear maps (N,H,W) or (N,1,H,W) -> model-space torch tensor (N, C, H, W)."""
    return to_torch(log10_to_model(maps_to_log10(maps, data), data), dtype, device)


def preprocess_cond(theta, data, dtype=torch.float64, device="cpu"):
    """Raw parameters (N, >=P) -> c = 2 (theta - lo)/(hi - lo) - 1 (N, P)."""
    lo = np.asarray(data["cond_lo"], dtype=np.float64)
    hi = np.asarray(data["cond_hi"], dtype=np.float64)
    t = np.atleast_2d(np.asarray(theta, dtype=np.float64))[:, :len(lo)]
    return to_torch(2.0 * (t - lo) / (hi - lo) - 1.0, dtype, device)


def log10_jacobian(x, data):
    """Per map sum over pixels of log|dy/du| (model space x -> add to log p to get log10 space)."""
    x = x.detach() if isinstance(x, torch.Tensor) else to_torch(x)
    N = x.shape[0]
    sigma = float(data["sigma"])
    if data.get("squash", "sigmoid") == "sigmoid":
        # log(1 - y^2) with y = tanh(d/2): log 4 + logsigmoid(d) + logsigmoid(-d), d = 2 atanh(y)
        d = 2.0 * torch.atanh(x)
        per = math.log(4.0) + F.logsigmoid(d) + F.logsigmoid(-d) - math.log(2.0) - math.log(sigma)
    else:
        per = torch.full_like(x, -math.log(sigma))
    return per.reshape(N, -1).sum(1)


def log10_jacobian_from_maps(maps, data):
    """Same as log10_jacobian but computed from raw maps without the tanh round trip."""
    u = maps_to_log10(maps, data)
    sigma = float(data["sigma"])
    d = (u - float(data["mu"])) / sigma
    if data.get("squash", "sigmoid") == "sigmoid":
        ls = lambda v: -np.logaddexp(0.0, -v)
        per = math.log(4.0) + ls(d) + ls(-d) - math.log(2.0) - math.log(sigma)
    else:
        per = np.full_like(d, -math.log(sigma))
    return per.reshape(per.shape[0], -1).sum(1)


def fit_data(maps, theta, floor=1e-8, downsample=1, squash="sigmoid",
             cond_names=("Omega_m", "sigma_8"), cond_lo=None, cond_hi=None):
    """The data config of spec 1.2-1.3 from training maps and parameters: mu, sigma (ddof 1) of
    u = log10(max(map, floor)) over all pixels; the condition box = min/max of the table unless
    given."""
    d = dict(downsample=int(downsample), floor=floor, mu=0.0, sigma=1.0, squash=squash,
             cond_names=list(cond_names))
    n, s1, s2 = 0, 0.0, 0.0
    arr = np.asarray(maps)
    for i in range(0, len(arr), 256):             # chunks: works on an mmap of a large file
        u = maps_to_log10(arr[i:i + 256], d)
        n, s1 = n + u.size, s1 + float(u.sum())
    mu = s1 / n
    for i in range(0, len(arr), 256):
        s2 += float(((maps_to_log10(arr[i:i + 256], d) - mu) ** 2).sum())
    d["mu"], d["sigma"] = mu, float(np.sqrt(s2 / (n - 1)))
    t = np.atleast_2d(np.asarray(theta, dtype=np.float64))[:, :len(cond_names)]
    d["cond_lo"] = list(map(float, t.min(0))) if cond_lo is None else list(cond_lo)
    d["cond_hi"] = list(map(float, t.max(0))) if cond_hi is None else list(cond_hi)
    return d


def postprocess(x, data, units="log10"):
    """Model-space maps (N, C, H, W) -> log10 (or linear) maps (N, H, W) when C == 1."""
    y = to_numpy(x).astype(np.float64)
    if data.get("squash", "sigmoid") == "sigmoid":
        y = np.clip(y, -0.999, 0.999)
        d = 2.0 * np.arctanh(y)
    else:
        d = y
    u = d * float(data["sigma"]) + float(data["mu"])
    if u.shape[1] == 1:
        u = u[:, 0]
    return 10.0 ** u if units == "linear" else u


# ----------------------------------------------------------------------------------------------
# Files and fresh models
def load(path, dtype=torch.float64, device="cpu"):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ValueError("%s: format is %r, not %r" % (path, meta.get("format"), FORMAT))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError("%s: unknown format_version %r" % (path, meta.get("format_version")))
    config = json.loads(meta["config"])
    data = json.loads(meta["data"]) if "data" in meta else dict(DEFAULT_DATA)
    m = Model(config, data, tensors, dtype=dtype, device=device)
    m.metadata = meta
    return m


def metadata_of(model, train=None):
    cfg = {k: model.config[k] for k in CONFIG_KEYS}
    data = {k: model.data[k] for k in DATA_KEYS if k in model.data}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": json.dumps(cfg), "data": json.dumps(data)}
    if train is not None:
        meta["train"] = json.dumps(train)
    return meta


def save(path, model, train=None):
    """Write a cglow checkpoint (F32 tensors, spec names and metadata)."""
    write_safetensors(path, model.state_numpy(), metadata_of(model, train))


def make_config(**overrides):
    cfg = dict(PRESET_HIGLOW)
    for k, v in overrides.items():
        if k not in cfg:
            raise ValueError("unknown config key %r" % k)
        cfg[k] = v
    return cfg


def init_params(cfg, seed=0, nonzero=0.0):
    """Fresh parameters as the spec says (dict name -> float64 torch tensor).

    nonzero > 0 replaces the zero-initialised tensors (zeroconvs, learned prior, fc2/fc3 biases)
    by normal(0, nonzero) values: a non-trivial random model for tests."""
    g = torch.Generator().manual_seed(int(seed))
    f64 = torch.float64
    Hd, P, Hc = cfg["hidden"], cfg["cond_features"], cfg["prior_hidden"]
    params = {}

    def small(shape):
        if nonzero > 0:
            return torch.randn(shape, generator=g, dtype=f64) * nonzero
        return torch.zeros(shape, dtype=f64)

    def linear_init(o, i):
        bound = 1.0 / math.sqrt(i)  # PyTorch Linear default: kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(in))
        w = (torch.rand((o, i), generator=g, dtype=f64) * 2 - 1) * bound
        bb = (torch.rand((o,), generator=g, dtype=f64) * 2 - 1) * bound
        return w, bb

    for b, (C, Hb, Wb, zs) in enumerate(block_shapes(cfg)):
        for k in range(cfg["steps"]):
            s = "blocks.%d.steps.%d." % (b, k)
            q, _ = torch.linalg.qr(torch.randn((C, C), generator=g, dtype=f64))
            Pm, Lm, Um = torch.linalg.lu(q)
            d = torch.diagonal(Um)
            params[s + "invconv.perm"] = Pm.clone()
            params[s + "invconv.lower"] = torch.tril(Lm, -1)
            params[s + "invconv.upper"] = torch.triu(Um, 1)
            params[s + "invconv.log_s"] = torch.log(d.abs())
            params[s + "invconv.sign"] = torch.sign(d)
            if nonzero > 0:
                params[s + "invconv.log_s"] = params[s + "invconv.log_s"] + small((C,))
            for part, cin, cout in (("injector", P, 2 * C), ("coupling", C // 2 + P, C)):
                params[s + part + ".conv1.weight"] = torch.randn((Hd, cin, 3, 3), generator=g, dtype=f64) * 0.05
                params[s + part + ".conv1.bias"] = small((Hd,))
                params[s + part + ".conv2.weight"] = torch.randn((Hd, Hd, 1, 1), generator=g, dtype=f64) * 0.05
                params[s + part + ".conv2.bias"] = small((Hd,))
                params[s + part + ".zero.weight"] = small((cout, Hd, 3, 3))
                params[s + part + ".zero.bias"] = small((cout,))
                params[s + part + ".zero.scale"] = small((cout,))
        D = zs[0] * zs[1] * zs[2]
        p = "blocks.%d.prior." % b
        if cfg["prior"] == "conditional":
            for mv in ("mean", "logvar"):
                for fc, (o, i) in (("fc1", (Hc, P)), ("fc2", (Hc, Hc)), ("fc3", (D, Hc))):
                    w, bb = linear_init(o, i)
                    params[p + mv + "." + fc + ".weight"] = w
                    params[p + mv + "." + fc + ".bias"] = bb if fc == "fc1" else small((o,))
        else:
            params[p + "mean"] = small(tuple(zs))
            params[p + "logvar"] = small(tuple(zs))
    return params


def init_model(cfg=None, data=None, seed=0, nonzero=0.0, dtype=torch.float64, device="cpu"):
    cfg = make_config() if cfg is None else dict(cfg)
    data = dict(DEFAULT_DATA) if data is None else dict(data)
    return Model(cfg, data, init_params(cfg, seed, nonzero), dtype=dtype, device=device)


def flops_per_map(cfg, fast_injector=False):
    """Multiply-adds x 2 of one forward pass per map (convs, 1x1 invconv, prior MLPs), every
    3x3 tap counted (also those on padding). fast_injector: the injector CNN on 5 x 5 maps.

    Returns dict part -> FLOPs: injector, coupling, invconv, prior."""
    Hd, P, Hc, K = cfg["hidden"], cfg["cond_features"], cfg["prior_hidden"], cfg["steps"]
    out = {"injector": 0, "coupling": 0, "invconv": 0, "prior": 0}
    for C, Hb, Wb, zs in block_shapes(cfg):
        hw = Hb * Wb
        ihw = 25 if (fast_injector and Hb >= 5 and Wb >= 5) else hw
        out["injector"] += K * ihw * (9 * P * Hd + Hd * Hd + 9 * Hd * 2 * C) * 2
        out["coupling"] += K * hw * (9 * (C // 2 + P) * Hd + Hd * Hd + 9 * Hd * C) * 2
        out["invconv"] += K * hw * C * C * 2
        D = zs[0] * zs[1] * zs[2]
        if cfg["prior"] == "conditional":
            out["prior"] += 2 * (P * Hc + Hc * Hc + Hc * D) * 2
    return out


def evaluate(model, maps, theta):
    """Convenience: raw maps and raw parameters -> dict of numpy results (spec quantities)."""
    x = preprocess_maps(maps, model.data, model.dtype, model.device)
    c = preprocess_cond(theta, model.data, model.dtype, model.device)
    loss, out = model.loss(x, c)
    lp = out.logp.detach()
    return {"logprob_model": to_numpy(lp),
            "logprob_log10": to_numpy(lp) + log10_jacobian_from_maps(maps, model.data),
            "latents": to_numpy(out.flat_latents()),
            "loss": float(loss.detach())}
