"""Which device and dtype a policy runs on, and whether bf16 autocast pays off there."""

from __future__ import annotations

import torch


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as given, else CUDA when there is a GPU, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a CUDA device that supports it, float32 elsewhere."""
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def bf16_is_fast(device: torch.device | str) -> bool:
    """Whether bf16 autocast speeds `device` up: a CUDA GPU with bf16, or a CPU with AMX tiles. Without AMX,
    bf16 on a CPU is emulated (AVX2) or converted per kernel (AVX-512 bf16) and measured slower than fp32
    (`experiments/bf16-speed/bf16_speed.py`; docs/experiments.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.cpu._is_amx_tile_supported())
