"""A small transformers GPT-2 trained in Python on the GPT example's data and saved, for `gpt --init_from`
(gpt_interop_test.cpp). Usage:
    gpt_pretrained.py DATA_DIR OUT_DIR [STEPS]
Writes OUT_DIR/model (save_pretrained), OUT_DIR/one/{train,val}.bin (the first 129 tokens of val.bin: one window of
128 tokens and its labels), OUT_DIR/expected.safetensors (input_ids (2, 128) and the model's logits) and prints
python_loss= (the trained model's mean next-token loss on that one window)."""
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
T = 128
torch.manual_seed(0)
torch.set_num_threads(2)
config = GPT2Config(n_layer=4, n_head=4, n_embd=128, vocab_size=256, n_positions=T, bos_token_id=0, eos_token_id=0)
model = GPT2LMHeadModel(config)  # transformers' default dropout (0.1) while training
train = torch.from_numpy(np.fromfile(data / "train.bin", dtype=np.uint16).astype(np.int64))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
generator = torch.Generator().manual_seed(0)
model.train()
for step in range(steps):
    starts = torch.randint(0, len(train) - T - 1, (8,), generator=generator)
    x = torch.stack([train[s : s + T] for s in starts])
    y = torch.stack([train[s + 1 : s + T + 1] for s in starts])
    loss = F.cross_entropy(model(x).logits.flatten(0, 1), y.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"gpt_pretrained: trained {steps} steps, last training loss {loss.item():.3f}")
model.eval()
model.save_pretrained(out / "model")

val = np.fromfile(data / "val.bin", dtype=np.uint16)
(out / "one").mkdir(parents=True, exist_ok=True)
for name in ("train.bin", "val.bin"):
    val[: T + 1].tofile(out / "one" / name)
window = torch.from_numpy(val[: T + 1].astype(np.int64))
ids = torch.from_numpy(val[T : 3 * T].astype(np.int64)).view(2, T)
with torch.no_grad():
    window_loss = F.cross_entropy(model(window[None, :T]).logits[0], window[1:])
    logits = model(ids).logits
save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()}, str(out / "expected.safetensors"))
print(f"python_loss={window_loss.item():.6f}")
