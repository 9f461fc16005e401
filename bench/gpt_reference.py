"""The GPT example's training loop in Python with HF Accelerate and PyTorch: the same model (GPT-2 blocks, byte
vocabulary, tied embeddings, tanh GELU, scaled_dot_product_attention), the same token windows of the same files,
AdamW with the same two parameter groups, warmup + cosine, clipping, batch and steps. It prints train_seconds= as
examples/gpt does, so bench/gpt_bench.sh can compare tokens per second. Run under torchrun for several processes:
    python gpt_reference.py --data_dir D --max_steps N [--n_layer ... same flags as examples/gpt]
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from accelerate import Accelerator

p = argparse.ArgumentParser()
for name, default in [("n_layer", 4), ("n_head", 4), ("n_embd", 128), ("block_size", 128), ("batch_size", 16),
                      ("max_steps", 2000), ("warmup_steps", 100), ("num_workers", 1), ("seed", 1337)]:
    p.add_argument(f"--{name}", type=int, default=default)
p.add_argument("--lr", type=float, default=2e-3)
p.add_argument("--weight_decay", type=float, default=0.1)
p.add_argument("--data_dir", required=True)
p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default="no")
p.add_argument("--pin_memory", action="store_true")
args = p.parse_args()


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, 2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(256, a.n_embd), nn.Embedding(a.block_size, a.n_embd)
        self.h = nn.ModuleList(Block(a.n_embd, a.n_head) for _ in range(a.n_layer))
        self.ln_f = nn.LayerNorm(a.n_embd)
        for name, p in self.named_parameters():  # GPT-2's initialisation, as examples/gpt/gpt.cpp
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            else:
                residual = name.endswith("attn_proj.weight") or name.endswith("mlp_proj.weight")
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * a.n_layer) if residual else 0.02)

    def forward(self, idx, labels):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


class Windows(torch.utils.data.Dataset):
    def __init__(self, path, block):
        self.tokens = np.memmap(path, dtype=np.uint16, mode="r")
        self.block = block

    def __len__(self):
        return (len(self.tokens) - self.block - 1) // self.block + 1

    def __getitem__(self, i):
        w = torch.from_numpy(self.tokens[i * self.block: i * self.block + self.block + 1].astype(np.int64))
        return {"input_ids": w[:-1], "labels": w[1:]}


accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision=args.mixed_precision)
torch.manual_seed(args.seed)
model = GPT(args)
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
loader = torch.utils.data.DataLoader(Windows(f"{args.data_dir}/train.bin", args.block_size),
                                     batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers,
                                     pin_memory=args.pin_memory)
warmup, total = args.warmup_steps * accelerator.num_processes, args.max_steps * accelerator.num_processes


def cosine_with_warmup(step):  # transformers' get_cosine_schedule_with_warmup (num_cycles 0.5), without the package
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup)
accelerator.print(f"model: {len(decay) + len(no_decay)} tensors, {sum(p.numel() for p in model.parameters())} parameters")
model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
steps, start = 0, time.perf_counter()
while steps < args.max_steps:
    for batch in loader:
        loss = model(batch["input_ids"], batch["labels"])
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        steps += 1
        if steps % 10 == 0 or steps == args.max_steps:
            mean = accelerator.reduce(loss.detach(), "mean").item()
            accelerator.print(f"step={steps} loss={mean:.6f}")
        if steps == args.max_steps:
            break
if args.device == "cuda":
    torch.cuda.synchronize()
accelerator.print(f"train_seconds={time.perf_counter() - start:.6f}")
