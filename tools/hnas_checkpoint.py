#!/usr/bin/python3
"""Loads an hnas pre-training checkpoint into PyTorch.

    import sys; sys.path.insert(0, "tools")
    from hnas_checkpoint import load
    model, info = load("runs/s1/checkpoints/winner")     # a directory (its latest) or a file
    logits = model(torch.tensor([[72, 105]]))             # [batch, seq, vocab]

The model is built from the checkpoint's /model attributes and holds its /weights under
the same module paths as hnas (embedding, layers.<i>.{norm,qkv,out} for attention,
layers.<i>.{norm,gate_up,down} for the SwiGLU MLP, final_norm, head when untied), so
`model.state_dict()` keys are the dataset names. Every tensor's checksum is verified.
The arithmetic is hnas's: RMSNorm, grouped-query attention with rotary embeddings on the
two halves of each head, causal softmax scaled by 1/sqrt(head_dim), SwiGLU with the gate
first; `generate` decodes with a KV cache for the attention layers, as `hnas generate`.

As a command (the reference the tests and tools/bench/decode_bench.sh compare against):
    hnas_checkpoint.py CHECKPOINT [--prompt TEXT] [--max-new-tokens N] [--compare FILE.h5]
                       [--repeats R]
--compare FILE.h5 checks the prompt's logits and the greedy tokens that
`hnas generate --generate.logits FILE.h5` wrote against this model's (exit 1 if not equal).
"""
import argparse
import math
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def checksum(array):
    """FNV-1a over 8-byte words of the raw bytes, then the remaining bytes (hnas's)."""
    data = np.ascontiguousarray(array).view(np.uint8).ravel()
    words = len(data) // 8
    h = 1469598103934665603
    prime = 1099511628211
    mask = (1 << 64) - 1
    if words:
        for w in data[: words * 8].view(np.uint64).tolist():
            h = ((h ^ w) * prime) & mask
    for b in data[words * 8 :].tolist():
        h = ((h ^ b) * prime) & mask
    return "%016x" % h


def checkpoint_file(path):
    if os.path.isdir(path):
        with open(os.path.join(path, "latest")) as f:
            return os.path.join(path, f.read().strip())
    return path


def read_tensor(dataset, verify=True):
    raw = dataset[()]
    if verify and checksum(raw) != dataset.attrs["fnv1a64"]:
        raise ValueError(f"{dataset.name} fails its checksum")
    dtype = dataset.attrs["dtype"]
    if dtype == "bfloat16":  # stored as its uint16 bit pattern
        return torch.from_numpy(raw.astype(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.array(raw))


def rms_norm(x, weight, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def rotate(x, cos, sin):
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class Norm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class Attention(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.h, self.kv, self.d = s["heads"], s["kv_heads"], s["head_dim"]
        self.norm = Norm(s["d_model"], s["norm_eps"])
        self.qkv = torch.nn.Linear(s["d_model"], (self.h + 2 * self.kv) * self.d, bias=False)
        self.out = torch.nn.Linear(self.h * self.d, s["d_model"], bias=False)

    def forward(self, x, cos, sin, cache=None, position=0):
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).split([self.h * self.d, self.kv * self.d, self.kv * self.d], dim=-1)
        q = q.view(b, n, self.h, self.d).transpose(1, 2)  # head h reads KV head h // (h / kv)
        k = k.view(b, n, self.kv, self.d).transpose(1, 2)
        v = v.view(b, n, self.kv, self.d).transpose(1, 2)
        c, s_ = cos[position:position + n], sin[position:position + n]
        q, k = rotate(q, c, s_), rotate(k, c, s_)
        if cache is not None:
            if cache["k"] is not None:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        group = self.h // self.kv
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d)
        length = k.shape[2]
        mask = torch.full((n, length), float("-inf")).triu(position + 1)
        out = torch.softmax(scores + mask, dim=-1) @ v
        return self.out(out.transpose(1, 2).reshape(b, n, self.h * self.d))


class Mlp(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.norm = Norm(s["d_model"], s["norm_eps"])
        self.gate_up = torch.nn.Linear(s["d_model"], 2 * s["mlp_hidden"], bias=False)
        self.down = torch.nn.Linear(s["mlp_hidden"], s["d_model"], bias=False)

    def forward(self, x, *unused, **unused_too):
        gate, up = self.gate_up(self.norm(x)).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class HybridModel(torch.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s
        self.embedding = torch.nn.Embedding(s["vocab_size"], s["d_model"])
        self.layers = torch.nn.ModuleList(Attention(s) if p == "A" else Mlp(s) for p in s["arch"])
        self.final_norm = Norm(s["d_model"], s["norm_eps"])
        self.head = None if s["tie_embeddings"] else torch.nn.Linear(s["d_model"], s["vocab_size"], bias=False)
        self.cos = self.sin = None

    def rope(self, length):
        if self.cos is None or self.cos.shape[0] < length:
            half = self.s["head_dim"] // 2
            inv = torch.pow(torch.tensor(self.s["rope_theta"], dtype=torch.float64),
                            -torch.arange(0, half, dtype=torch.float64) * 2.0 / self.s["head_dim"])
            angles = torch.outer(torch.arange(length, dtype=torch.float64), inv)
            self.cos, self.sin = torch.cos(angles).float(), torch.sin(angles).float()
        return self.cos, self.sin

    def forward(self, tokens, caches=None, position=0):
        cos, sin = self.rope(position + tokens.shape[1])
        x = self.embedding(tokens)
        for i, layer in enumerate(self.layers):
            x = x + layer(x, cos, sin, None if caches is None else caches[i], position)
        x = self.final_norm(x)
        return x @ self.embedding.weight.t() if self.head is None else self.head(x)

    @torch.inference_mode()
    def generate(self, prompt, max_new_tokens):
        """Greedy decoding with a KV cache for the attention layers; returns (tokens,
        prompt logits, prefill seconds, decode seconds per token)."""
        caches = [{"k": None, "v": None} if p == "A" else None for p in self.s["arch"]]
        tokens = torch.tensor([prompt])
        start = time.perf_counter()
        logits = self(tokens, caches, 0)
        nxt = int(logits[0, -1].argmax())
        prefill = time.perf_counter() - start
        out, position = [nxt], len(prompt)
        start = time.perf_counter()
        for _ in range(max_new_tokens - 1):
            step = self(torch.tensor([[nxt]]), caches, position)
            position += 1
            nxt = int(step[0, -1].argmax())
            out.append(nxt)
        decode = (time.perf_counter() - start) / max(max_new_tokens - 1, 1)
        return out, logits[0], prefill, decode


def load(path, verify=True):
    """(model, info) from a checkpoint file or directory; info holds /state and /model."""
    path = checkpoint_file(path)
    with h5py.File(path, "r") as f:
        m = f["/model"].attrs
        shape = {k: (m[k].decode() if isinstance(m[k], bytes) else m[k]) for k in m}
        for key in ("d_model", "heads", "kv_heads", "head_dim", "mlp_hidden", "vocab_size"):
            shape[key] = int(shape[key])
        shape["tie_embeddings"] = bool(shape["tie_embeddings"])
        model = HybridModel(shape)
        state = {name: read_tensor(f["/weights/" + name], verify) for name in f["/weights"]}
        info = {"path": path, "model": shape, "state": dict(f["/state"].attrs)}
    missing = set(model.state_dict()) - set(state)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}")
    model.load_state_dict(state)
    return model.eval(), info


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--prompt", default="The ")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--compare", help="HDF5 file written by hnas generate --generate.logits")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = load(args.checkpoint)
    prompt = list(args.prompt.encode())
    if args.compare:
        with h5py.File(args.compare, "r") as f:
            prompt = [int(t) for t in f["/prompt"][()]]
            theirs = f["/prompt_logits"][()].reshape(len(prompt), -1)
            their_tokens = [int(t) for t in f["/generated"][()]]
        args.max_new_tokens = len(their_tokens)
    results = [model.generate(prompt, args.max_new_tokens) for _ in range(args.repeats)]
    tokens, logits = results[0][0], results[0][1].numpy()
    prefill = sum(r[2] for r in results) / len(results)
    decode = sum(r[3] for r in results) / len(results)
    print(f"pytorch: {info['path']} ({info['model']['arch']})")
    print("pytorch: tokens " + " ".join(map(str, tokens)))
    print(f"pytorch: prefill {len(prompt)} tokens in {1e3 * prefill:.3f} ms; decode {1e3 * decode:.3f} ms/token")
    if args.compare:
        worst = float(np.max(np.abs(logits - theirs)))
        scale = float(np.max(np.abs(theirs)))
        print(f"pytorch: prompt logits differ from hnas's by at most {worst:.3g} (largest logit {scale:.3g})")
        if worst > 1e-4 * max(scale, 1.0):
            print("pytorch: FAIL: the logits differ")
            sys.exit(1)
        if tokens != their_tokens:
            print("pytorch: FAIL: greedy tokens differ from hnas's: " + " ".join(map(str, their_tokens)))
            sys.exit(1)
        print("pytorch: logits and greedy tokens equal hnas's")


if __name__ == "__main__":
    main()
