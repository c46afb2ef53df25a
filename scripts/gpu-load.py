"""bf16 matmuls on GPU 0 for argv[1] seconds; prints LOAD_START / LOAD_END with wall times."""
import sys
import time

import torch

a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn_like(a)
torch.cuda.synchronize()
print("LOAD_START", time.time(), flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
print("LOAD_END", time.time(), flush=True)
