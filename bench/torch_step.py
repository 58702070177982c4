"""PyTorch's CPU training step on the shape imtrain's bench measures, for the README's comparison.

The same GPT-2 block as shared/model/gpt.ts (pre-LayerNorm, causal attention, gelu_new, tied embeddings),
one step = forward, cross-entropy over every position, backward, AdamW. Prints one JSON line.
Usage: python3 bench/torch_step.py D LAYERS HEADS SEQ BATCH VOCAB THREADS [DEVICE]
DEVICE is cpu (default) or cuda: on a GPU node, PyTorch's fp32 step there, to read webgpu's figure against.
"""

import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        hs = d // self.heads
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, hs).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(hs) + mask
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.c_proj(context)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab: int, positions: int, d: int, layers: int, heads: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(positions, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        mask = torch.full((t, t), -1e9, device=ids.device).triu(1)
        x = self.wte(ids) + self.wpe(torch.arange(t, device=ids.device))
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x) @ self.wte.weight.T


def main() -> None:
    d, layers, heads, seq, batch, vocab, threads = (int(a) for a in sys.argv[1:8])
    device = torch.device(sys.argv[8] if len(sys.argv) > 8 else "cpu")
    # fp32 products as imtrain's (TF32 would be a different, faster arithmetic).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Gpt(vocab, seq, d, layers, heads).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.randint(0, vocab, (batch, seq + 1), device=device)
    inputs, targets = ids[:, :-1], ids[:, 1:]

    def step() -> None:
        loss = F.cross_entropy(model(inputs).reshape(-1, vocab), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    for _ in range(5):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    seconds = sorted(times)[len(times) // 2]
    print(json.dumps({"torch": torch.__version__, "device": str(device), "threads": threads, "seconds": seconds,
                      "tokens_per_s": batch * seq / seconds}))


if __name__ == "__main__":
    main()
