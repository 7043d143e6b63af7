"""Train the bundled Fashion-MNIST reference checkpoints (reproducible: fixed seeds, deterministic data order).

    python benchmarks/train_reference.py --arch resnet20 --name fmnist_resnet20 --epochs 5
    python benchmarks/train_reference.py --arch resnet50_small --name fmnist_resnet50_small --epochs 5

Trains on the 60,000 training images (random horizontal flips), evaluates on the 10,000 test images with
PyTorch, and writes ``resnet_deploy/models/checkpoints/NAME.safetensors`` plus a JSON record of the run
(machine, time taken, per-epoch loss and accuracy) under ``benchmarks/results/training/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from resnet_deploy.data.idx import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_fashion_mnist,
)
from resnet_deploy.info import ModelInfo
from resnet_deploy.models import NormalizedModel, build_model
from resnet_deploy.models.bundled import BUNDLED_DIR
from resnet_deploy.models.weights import save_checkpoint

ROOT = Path(__file__).resolve().parent


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(x[i : i + batch]).to(device))
            correct += int((logits.argmax(1).cpu().numpy() == y[i : i + batch]).sum())
    return 100.0 * correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's default)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    net = build_model(args.arch, num_classes=10, in_channels=1)
    model = NormalizedModel(net, [FASHION_MNIST_MEAN], [FASHION_MNIST_STD]).to(device)
    steps_per_epoch = len(x_train) // args.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    history = []
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        flips = rng.random(len(x_train)) < 0.5
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch_size : (step + 1) * args.batch_size]
            xb = x_train[idx].copy()
            xb[flips[idx]] = xb[flips[idx]][..., ::-1]
            xb_t = torch.from_numpy(xb).to(device)
            yb_t = torch.from_numpy(y_train[idx]).to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb_t), yb_t)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
            if step % 100 == 0:
                print(f"epoch {epoch + 1} step {step}/{steps_per_epoch} loss {float(loss):.4f}", flush=True)
        acc = evaluate(model, x_test, y_test, device)
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total / steps_per_epoch,
                "test_top1": acc,
                "elapsed_s": round(time.time() - t0, 1),
            }
        )
        print(json.dumps(history[-1]), flush=True)

    top1 = history[-1]["test_top1"]
    info = ModelInfo(
        arch=args.arch,
        num_classes=10,
        in_channels=1,
        input_size=28,
        mean=[FASHION_MNIST_MEAN],
        std=[FASHION_MNIST_STD],
        dataset="fashion-mnist",
        labels=FASHION_MNIST_CLASSES,
        name=args.name,
        top1=top1,
    )
    out = save_checkpoint(BUNDLED_DIR / f"{args.name}.safetensors", net.cpu(), info)
    record = {
        "name": args.name,
        "arch": args.arch,
        "args": vars(args),
        "device": str(device),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        },
        "torch": torch.__version__,
        "train_time_s": round(time.time() - t0, 1),
        "history": history,
        "test_top1_pytorch": top1,
        "checkpoint": str(out.relative_to(ROOT.parent)),
    }
    results = ROOT / "results" / "training"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {out} (test top-1 {top1:.2f} %)")


if __name__ == "__main__":
    main()
