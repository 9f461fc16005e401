"""The GPT example's model, saved by save_hf_gpt2, against Python transformers: GPT2LMHeadModel.from_pretrained
loads the folder and gives the same logits as LibTorch did (within 1e-4, fp32). Usage:
    gpt_interop.py MODEL_DIR EXPECTED.safetensors
EXPECTED holds input_ids (B, T) and logits (B, T, V) computed by the C++ model."""
import sys

import torch
from safetensors.torch import load_file
from transformers import GPT2LMHeadModel

folder, expected_file = sys.argv[1], sys.argv[2]
expected = load_file(expected_file)
model = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
with torch.no_grad():
    logits = model(expected["input_ids"]).logits
diff = (logits - expected["logits"]).abs().max().item()
print(f"gpt_interop: max |logits difference| = {diff:.3g}")
sys.exit(0 if diff < 1e-4 else 1)
