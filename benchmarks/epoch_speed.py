"""How fast is one epoch of MNIST with vae_utils, against the usual tutorial loop?

    python benchmarks/epoch_speed.py               # one epoch each, ~30 s on 2 CPU cores
    python benchmarks/epoch_speed.py --epochs 10   # also train both 10 epochs: same test bound?
    python benchmarks/epoch_speed.py --threads 1 --cpu-time   # steadier on a busy machine

Trains the same model (784-400-20 ReLU MLP encoder, 20-400-784 Bernoulli decoder, Adam 1e-3,
batch 128, estimator B with one sample) for one epoch two ways:

    engine     vae_utils.train.train: minibatches index one in-memory tensor
    reference  the loop most tutorials write (pytorch/examples' VAE): DataLoader over a
               TensorDataset, shuffle, sigmoid + binary_cross_entropy summed over pixels

and measures, in the same run, the GFLOP/s of a large (2048 x 2048) fp32 matmul, the most
this machine does with these kernels. The rounds alternate reference, engine, matmul, so
load from other programs hits all three alike; each figure is the best round (least
disturbed), and the median is printed beside it to show the spread.

FLOPs counted (analytically, the usual "model FLOPs" convention): a Linear layer (in -> out)
costs 2*in*out per datapoint forward and twice that backward (gradient of the weights and of
the input), so 3 * forward in all; biases, activations, the loss and Adam are left out (under
1%). One epoch of 60,000 images is then 234.4 GFLOP. Autograd skips the input gradient of the
first layer (the pixels need none), so the matmuls actually executed are 196.8 GFLOP; that
figure is printed too, but matmul_fraction uses the model-FLOP count, as the issue does.

The last line is: speedup_vs_dataloader=X.XX matmul_fraction=0.XX, where speedup is the
ratio of samples/s (engine over reference) and matmul_fraction is the engine's epoch GFLOP/s
over the large-matmul GFLOP/s.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import vae_utils
from vae_utils.data import Split, load_mnist
from vae_utils.evaluate import lower_bound
from vae_utils.models import VAEConfig
from vae_utils.train import TrainConfig, build, train

BATCH, LR, HIDDEN, Z = 128, 1e-3, 400, 20
MODEL = VAEConfig(hidden=(HIDDEN,), z_dim=Z, activation="relu", init="default")
WARMUP_STEPS = 10
clock = time.perf_counter  # wall time; --cpu-time swaps in time.process_time


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- the reference: the loop of pytorch/examples' vae/main.py -----------------------------

class ReferenceVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, HIDDEN)
        self.fc21 = nn.Linear(HIDDEN, Z)
        self.fc22 = nn.Linear(HIDDEN, Z)
        self.fc3 = nn.Linear(Z, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar

    def log_likelihood(self, x, z):
        """log p(x|z) per datapoint, so that vae_utils.evaluate.lower_bound can score it."""
        return -F.binary_cross_entropy(self.decode(z), x.expand(*z.shape[:-1], 784),
                                       reduction="none").sum(-1)


def reference_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def reference_epoch(model, opt, x_cpu, device, max_steps=None):
    loader = DataLoader(TensorDataset(x_cpu), batch_size=BATCH, shuffle=True)
    model.train()
    for step, (xb,) in enumerate(loader):
        if step == max_steps:
            break
        xb = xb.to(device)
        opt.zero_grad()
        recon, mu, logvar = model(xb)
        loss = reference_loss(recon, xb, mu, logvar)
        loss.backward()
        opt.step()


def time_reference(x_cpu, device, seed):
    torch.manual_seed(seed)
    model = ReferenceVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    reference_epoch(model, opt, x_cpu, device, max_steps=WARMUP_STEPS)  # warm-up, not timed
    sync(device)
    t0 = clock()
    reference_epoch(model, opt, x_cpu, device)
    sync(device)
    return clock() - t0


# -- the engine ----------------------------------------------------------------------------

def time_engine(data: Split, seed):
    model = build(MODEL, seed, data.x.device)
    warm = Split(data.x[:WARMUP_STEPS * BATCH], None, data.image_shape)
    config = TrainConfig(epochs=1, batch_size=BATCH, optimizer="adam", lr=LR, seed=seed)
    train(model, warm, config, progress=False)  # warm-up, not timed
    sync(data.x.device)
    t0 = clock()
    train(model, data, config, progress=False)
    sync(data.x.device)
    return clock() - t0


# -- the machine ---------------------------------------------------------------------------

def matmul_gflops(device, n=2048, reps=10):
    """fp32 GFLOP/s of an n x n matmul, the best of 3 timings of `reps` products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(3):
        sync(device)
        t0 = clock()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, clock() - t0)
    return 2 * n**3 * reps / best / 1e9


def epoch_flops(n):
    """(model FLOPs, executed FLOPs) of one epoch of n datapoints: see the module docstring."""
    layers = [(784, HIDDEN), (HIDDEN, 2 * Z), (Z, HIDDEN), (HIDDEN, 784)]
    forward = sum(2 * i * o for i, o in layers)
    first_input_grad = 2 * 784 * HIDDEN
    return 3 * forward * n, (3 * forward - first_input_grad) * n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default=str(vae_utils.device()))
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (best is kept)")
    p.add_argument("--epochs", type=int, default=0,
                   help="also train both this many epochs (e.g. 10) and print their test bounds")
    p.add_argument("--cpu-time", action="store_true",
                   help="time by this process's CPU time, not wall time: steadier on a machine "
                        "busy with other work; needs --threads 1")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        if torch.get_num_threads() != 1 or device.type != "cpu":
            p.error("--cpu-time needs --threads 1 on the CPU (waiting threads spin, and count)")
        global clock
        clock = time.process_time

    splits = load_mnist(progress=False)
    x_cpu = splits["train"].x  # the reference's DataLoader reads CPU tensors, as tutorials do
    data = Split(x_cpu.to(device), None, (28, 28))
    n = len(data)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"train={n} batch={BATCH} clock={'cpu' if args.cpu_time else 'wall'}")

    ref, eng, mm = [], [], []
    for r in range(args.rounds):
        ref.append(time_reference(x_cpu, device, seed=r))
        eng.append(time_engine(data, seed=r))
        mm.append(matmul_gflops(device))
        print(f"round {r}: reference {ref[-1]:.2f} s  engine {eng[-1]:.2f} s  "
              f"matmul {mm[-1]:.0f} GFLOP/s", flush=True)

    model_flops, executed_flops = epoch_flops(n)
    t_ref, t_eng, peak = min(ref), min(eng), max(mm)
    print(f"reference (DataLoader) : {t_ref:.2f} s/epoch (median {statistics.median(ref):.2f})  "
          f"{n / t_ref:,.0f} samples/s")
    print(f"engine (vae_utils)     : {t_eng:.2f} s/epoch (median {statistics.median(eng):.2f})  "
          f"{n / t_eng:,.0f} samples/s")
    print(f"matmul 2048x2048 fp32  : {peak:.0f} GFLOP/s (median {statistics.median(mm):.0f})")
    print(f"epoch FLOPs            : {model_flops / 1e9:.1f} GFLOP model (3 x forward), "
          f"{executed_flops / 1e9:.1f} GFLOP executed")
    print(f"engine achieved        : {model_flops / t_eng / 1e9:.0f} GFLOP/s model, "
          f"{executed_flops / t_eng / 1e9:.0f} GFLOP/s executed; "
          f"limit at matmul speed {model_flops / peak / 1e9:.2f} s/epoch")

    if args.epochs:
        test = Split(splits["test"].x.to(device), None, (28, 28))
        torch.manual_seed(0)
        ref_model = ReferenceVAE().to(device)
        opt = torch.optim.Adam(ref_model.parameters(), lr=LR)
        t0 = clock()
        for _ in range(args.epochs):
            reference_epoch(ref_model, opt, x_cpu, device)
        t_ref_all = clock() - t0
        ref_model.eval()
        eng_model = build(MODEL, 0, device)
        t0 = clock()
        train(eng_model, data, TrainConfig(epochs=args.epochs, batch_size=BATCH, optimizer="adam",
                                           lr=LR), progress=False)
        t_eng_all = clock() - t0
        print(f"test lower bound after {args.epochs} epochs: "
              f"reference {lower_bound(ref_model, test):.2f} nats ({t_ref_all:.1f} s), "
              f"engine {lower_bound(eng_model, test):.2f} nats ({t_eng_all:.1f} s)")

    print(f"speedup_vs_dataloader={t_ref / t_eng:.2f} matmul_fraction={model_flops / t_eng / 1e9 / peak:.2f}")


if __name__ == "__main__":
    main()
