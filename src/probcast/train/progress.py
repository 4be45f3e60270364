"""Per-epoch progress of the training loop: the record kept in ``history.json`` and the log line."""

from __future__ import annotations

import math

import jax
import numpy as np


def epoch_record(
    epoch: int,
    loss: float,
    per: jax.Array,
    val_loss: float,
    val_crps: dict[str, float],
    lr: float,
    rate: float,
    heads: dict[str, str],
) -> dict[str, float]:
    """One epoch's figures as a flat record (``history.json``, the tracker)."""
    rec: dict[str, float] = {"epoch": epoch, "train_loss": loss, "val_loss": val_loss}
    rec.update({f"train_crps_{v}": float(c) for v, c in zip(heads, np.asarray(per), strict=True)})
    rec.update({f"val_crps_{v}": c for v, c in val_crps.items()})
    rec.update(lr=lr, samples_per_s=rate)
    return rec


def format_epoch(rec: dict[str, float], epochs: int) -> str:
    """The progress line of one epoch."""
    train = " ".join(f"{k[11:]}={v:.4g}" for k, v in rec.items() if k.startswith("train_crps_"))
    val = " ".join(f"{k[9:]}={v:.4g}" for k, v in rec.items() if k.startswith("val_crps_"))
    loss = f" (loss {rec['val_loss']:.4f})" if math.isfinite(rec["val_loss"]) else ""
    return (
        f"epoch {int(rec['epoch']):>3}/{epochs} | train crps {train} | val crps {val or '-'}"
        f"{loss} | lr {rec['lr']:.2e} | {rec['samples_per_s']:.3g} samples/s"
    )


def tracked_metrics(rec: dict[str, float], index: int, n_seeds: int) -> dict[str, float]:
    """The finite figures of ``rec`` for the tracker, prefixed by the seed when several."""
    prefix = f"seed{index}/" if n_seeds > 1 else ""
    return {f"{prefix}{k}": v for k, v in rec.items() if k != "epoch" and math.isfinite(v)}


def epoch_summary(rec: dict[str, float]) -> str:
    """Short text of one epoch for the progress bar: the validation CRPS (else training)."""
    val = [(k[9:], v) for k, v in rec.items() if k.startswith("val_crps_") and math.isfinite(v)]
    pairs = val or [(k[11:], v) for k, v in rec.items() if k.startswith("train_crps_")]
    return ("val crps " if val else "train crps ") + " ".join(f"{k}={v:.4g}" for k, v in pairs)
