"""Throughput of the PyTorch reference (python/cglow_torch.py) in float32: training, scoring and
sampling, plus the FLOP count of one forward pass per map.

    build/venv/bin/python bench/torch_bench.py                      # CPU, 2 threads, higlow preset
    build/venv/bin/python bench/torch_bench.py --threads 1 --quick  # fewer timed steps
    build/venv/bin/python bench/torch_bench.py --device cuda        # a GPU, if there is one

- train: batch --batch (64) of 1 x 64 x 64 maps, forward + backward + grad-norm clip 2 + Adam
  step (lr 3e-4), --warmup untimed steps then --steps timed ones; maps/s.
- score: ONE map at the 900 conditions of the 30 x 30 posterior grid, no_grad, in chunks of
  --chunks (900, 300, 100); log p evaluations/s per chunk size, best reported.
- sample: --sample-n maps (64) at one condition per call (inverse flow); maps/s.
On a shared (loaded) CPU, 2 OpenMP threads can be far slower than 1 unless OMP_WAIT_POLICY=PASSIVE.
The model code is the reference's straightforward one (the injector CNN runs on the broadcast
condition map, as written in the spec); the numbers are what plain PyTorch gets, not a tuned port.
"""
import argparse
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import cglow_torch as ct  # noqa: E402
import torch  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, reps):
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(dev)
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--steps-per-block", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed training steps")
    ap.add_argument("--chunks", default="900,300,100,50")
    ap.add_argument("--grid", type=int, default=30)
    ap.add_argument("--sample-n", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1, help="timed repetitions of score and sample")
    ap.add_argument("--fast-injector", action="store_true",
                    help="the injector CNN on a 5x5 map, expanded (same numbers, spec 2.2)")
    ap.add_argument("--only", default="flops,train,score,sample")
    ap.add_argument("--quick", action="store_true", help="1 warm-up, 2 timed steps, 1 rep")
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args()
    if a.quick:
        a.warmup, a.steps, a.reps = 1, 2, 1
        a.chunks = a.chunks.split(",")[0]
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    dt = torch.float32
    only = set(a.only.split(","))
    cfg = ct.make_config(levels=a.levels, steps=a.steps_per_block, hidden=a.hidden, height=a.size, width=a.size)
    res = {"config": cfg, "device": str(dev), "threads": a.threads, "torch": torch.__version__,
           "fast_injector": a.fast_injector, "command": " ".join(sys.argv),
           "machine": "%s, %d CPUs (%s)" % (platform.machine(), os.cpu_count(), platform.processor() or "?"),
           "load_before": os.getloadavg()}
    if dev.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(dev)

    fl = ct.flops_per_map(cfg, a.fast_injector)
    ftot = sum(fl.values())
    res["flops_forward_per_map"] = fl
    print("config: %s" % json.dumps(cfg))
    res["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "(default)")
    print("device %s, threads %d, torch %s, float32, injector %s, OMP_WAIT_POLICY %s, load %.2f %.2f %.2f" %
          ((res.get("gpu") or str(dev)), a.threads, torch.__version__,
           "5x5 shortcut" if a.fast_injector else "plain", res["omp_wait_policy"], *res["load_before"]))
    if "flops" in only:
        print("\nforward FLOPs per map (multiply-adds x 2): %.1f MFLOP" % (ftot / 1e6))
        for k, v in fl.items():
            print("  %-9s %8.2f MFLOP  %5.1f%%" % (k, v / 1e6, 100.0 * v / ftot))

    m = ct.init_model(cfg, seed=0, nonzero=0.01, dtype=dt, device=dev)
    m.fast_injector = a.fast_injector
    g = torch.Generator().manual_seed(1)
    rows = []

    if "train" in only:
        x = torch.tanh(torch.randn(a.batch, 1, a.size, a.size, generator=g)).to(dev, dt)
        c = (torch.rand(a.batch, 2, generator=g) * 2 - 1).to(dev, dt)
        params = [v for _, v in m.trainable()]
        opt = torch.optim.Adam(params, lr=3e-4, betas=(0.9, 0.999), eps=1e-8)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, _ = m.loss(x, c)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 2.0)
            opt.step()
        for _ in range(a.warmup):
            step()
        t = timed(step, dev, a.steps)
        res["train_maps_per_s"] = a.batch / t
        res["train_s_per_step"] = t
        rows.append(("train (batch %d, fwd+bwd+Adam)" % a.batch, "%.1f maps/s" % (a.batch / t),
                     "%.3f s/step, ~%.1f GFLOP/s at 3x fwd" % (t, 3 * ftot * a.batch / t / 1e9)))
        del opt, params
        for v in m.params.values():
            v.grad = None

    if "score" in only:
        G = a.grid
        om = (torch.arange(G, dtype=torch.float64) + 0.5) / G
        theta = torch.stack(torch.meshgrid(0.1 + 0.4 * om, 0.6 + 0.4 * om, indexing="ij"), -1).reshape(-1, 2)
        c_all = ct.preprocess_cond(ct.to_numpy(theta), m.data, dt, dev)
        x1 = torch.tanh(torch.randn(1, 1, a.size, a.size, generator=g)).to(dev, dt)
        best = None
        for chunk in [int(s) for s in a.chunks.split(",")]:
            def score():
                with torch.no_grad():
                    for i in range(0, G * G, chunk):
                        cc = c_all[i:i + chunk]
                        m.forward(x1.expand(cc.shape[0], -1, -1, -1), cc)
            with torch.no_grad():  # warm-up: one chunk
                m.forward(x1.expand(min(chunk, G * G), -1, -1, -1), c_all[:chunk])
            t = timed(score, dev, a.reps)
            rate = G * G / t
            res["score_evals_per_s_chunk_%d" % chunk] = rate
            rows.append(("score 1 map x %d conds, chunk %d" % (G * G, chunk), "%.1f evals/s" % rate,
                         "%.3f s per grid, %.1f GFLOP/s" % (t, ftot * rate / 1e9)))
            best = max(best or 0, rate)
        res["score_evals_per_s_best"] = best

    if "sample" in only:
        c1 = ct.preprocess_cond([[0.3, 0.8]] * a.sample_n, m.data, dt, dev)

        def samp():
            m.sample(c1, 1.0)
        samp()
        t = timed(samp, dev, a.reps)
        res["sample_maps_per_s"] = a.sample_n / t
        rows.append(("sample (%d maps per call)" % a.sample_n, "%.1f maps/s" % (a.sample_n / t), "%.3f s per call" % t))

    res["load_after"] = os.getloadavg()
    if rows:
        w = max(len(r[0]) for r in rows)
        print("\n%-*s  %-16s  %s" % (w, "benchmark", "throughput", "detail"))
        print("-" * (w + 50))
        for r in rows:
            print("%-*s  %-16s  %s" % (w, r[0], r[1], r[2]))
    print("\nload average before %.2f, after %.2f (1 min)" % (res["load_before"][0], res["load_after"][0]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
