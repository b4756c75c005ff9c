#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Times one training step of the hybrid model written in eager-mode PyTorch.

The baseline that tools/bench/step_bench compares the C++ model against: the same
architecture, shapes, initialisation family, loss and optimiser, written the way a careful
PyTorch user would (fused QKV and gate/up projections, GQA without repeating K/V, a
precomputed causal mask, set_to_none gradients). Run with Debian's /usr/bin/python3,
which has torch. Prints one machine-readable line: `python <shape> key=value ...`.
"""

import argparse
import ctypes
import ctypes.util
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The two benchmark shapes; must match kShapes in step_bench.cpp.
SHAPES = {
    "search": dict(arch="AAMMMMMAAMMMAMMM", d_model=128, heads=16, kv_heads=4, head_dim=8,
                   hidden=352, vocab=16, seq=128, batch=32),
    "large": dict(arch="AMAMAMAM", d_model=512, heads=8, kv_heads=4, head_dim=64,
                  hidden=1536, vocab=4096, seq=256, batch=8),
}
NORM_EPS = 1e-5
ROPE_THETA = 10000.0


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.weight


def apply_rope(x, cos, sin):
    # NeoX layout: rotate the two halves of the head dimension.
    x1, x2 = x.chunk(2, -1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)


class Attention(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.h, self.kv, self.d = s["heads"], s["kv_heads"], s["head_dim"]
        self.g = self.h // self.kv
        self.scale = 1.0 / math.sqrt(self.d)
        self.norm = RMSNorm(s["d_model"])
        self.qkv = nn.Linear(s["d_model"], (self.h + 2 * self.kv) * self.d, bias=False)
        self.out = nn.Linear(self.h * self.d, s["d_model"], bias=False)

    def forward(self, x, ctx):
        cos, sin, mask = ctx
        b, t, _ = x.shape
        kv, g, d = self.kv, self.g, self.d
        q, k, v = self.qkv(self.norm(x)).split([self.h * d, kv * d, kv * d], -1)
        # Queries grouped by the KV head they read, so one bmm per KV head serves the
        # whole group without materialising repeated K/V.
        q = apply_rope(q.view(b, t, kv, g, d).permute(0, 2, 3, 1, 4), cos, sin).reshape(b * kv, g * t, d)
        k = apply_rope(k.view(b, t, kv, d).transpose(1, 2), cos, sin).reshape(b * kv, t, d)
        v = v.view(b, t, kv, d).transpose(1, 2).reshape(b * kv, t, d)
        scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=self.scale)
        y = torch.bmm(scores.softmax(-1), v)
        y = y.view(b, kv, g, t, d).permute(0, 3, 1, 2, 4).reshape(b, t, self.h * d)
        return self.out(y)


class Mlp(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.norm = RMSNorm(s["d_model"])
        self.gate_up = nn.Linear(s["d_model"], 2 * s["hidden"], bias=False)
        self.down = nn.Linear(s["hidden"], s["d_model"], bias=False)

    def forward(self, x, ctx):
        g, u = self.gate_up(self.norm(x)).chunk(2, -1)
        return self.down(F.silu(g) * u)


class HybridModel(nn.Module):
    def __init__(self, s, seed):
        super().__init__()
        self.embedding = nn.Embedding(s["vocab"], s["d_model"])
        self.layers = nn.ModuleList(Attention(s) if c == "A" else Mlp(s) for c in s["arch"])
        self.final_norm = RMSNorm(s["d_model"])
        self.head = nn.Linear(s["d_model"], s["vocab"], bias=False)
        # Llama init, as the C++ default: N(0, 0.02) for every matrix, norm gains 1.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    m.weight.normal_(0.0, 0.02, generator=gen)
        # Rotary tables [T, D/2] and the causal mask [G*T, T] (-inf above the diagonal,
        # repeated once per query of a group) are computed once.
        t, d = s["seq"], s["head_dim"]
        inv_freq = ROPE_THETA ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2.0 / d)
        angles = torch.outer(torch.arange(t, dtype=torch.float64), inv_freq)
        mask = torch.full((t, t), float("-inf")).triu(1).repeat(s["heads"] // s["kv_heads"], 1)
        self.ctx = (angles.cos().float(), angles.sin().float(), mask)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for layer in self.layers:
            x = x + layer(x, self.ctx)
        return self.head(self.final_norm(x))


def set_blas_threads(n):
    """torch.set_num_threads sizes the OpenMP pool only; a pthread OpenBLAS keeps its own."""
    for name in ("openblas", "blas"):
        path = ctypes.util.find_library(name)
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_set_num_threads(ctypes.c_int(n))
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "none"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="search")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10, help="timed steps; the median is reported")
    p.add_argument("--expect-params", type=int, default=0,
                   help="parameter count of the C++ model; the script fails if it differs")
    p.add_argument("--foreach", action="store_true", help="AdamW(foreach=True)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    blas_core = set_blas_threads(args.threads)
    torch.manual_seed(args.seed)
    s = SHAPES[args.shape]
    model = HybridModel(s, args.seed)
    params = list(model.parameters())
    num_params = sum(q.numel() for q in params)
    if args.expect_params and num_params != args.expect_params:
        sys.exit(f"step_reference: {num_params} parameters, the C++ model has {args.expect_params}")

    decay = [q for q in params if q.dim() >= 2]
    no_decay = [q for q in params if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8, foreach=args.foreach)

    # Pre-allocated batches, cycled, so data creation is not timed.
    tokens_per_step = s["batch"] * s["seq"]
    batches = [(torch.randint(s["vocab"], (s["batch"], s["seq"])), torch.randint(s["vocab"], (s["batch"], s["seq"])))
               for _ in range(4)]

    def step(i):
        inputs, targets = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits.view(-1, s["vocab"]), targets.view(-1), reduction="sum") / tokens_per_step
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    model.train()
    loss0 = step(0)
    for i in range(1, args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    sec = statistics.median(times)
    print(f"python {args.shape} params={num_params} threads={args.threads} blas={blas_core} "
          f"steps={args.steps} ms_per_step={1e3 * sec:.3f} min_ms={1e3 * min(times):.3f} "
          f"tokens_per_s={tokens_per_step / sec:.1f} loss0={loss0:.4f} "
          f"times_ms={','.join(f'{1e3 * t:.3f}' for t in times)}", flush=True)


if __name__ == "__main__":
    main()
