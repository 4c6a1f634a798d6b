"""Consistency checks of a workflow config beyond what its JSON schema says."""

from __future__ import annotations

from seqnn import SeqnnError


def check_data(data: dict, where: str = "config") -> None:
    """One line per inconsistent data setting (lengths, crop, strides)."""
    seq_length, pool, crop = data["seq_length"], data.get("pool_width", 32), data.get("crop_bp", 0)
    if seq_length % pool:
        raise SeqnnError(f"{where}: data.seq_length {seq_length} is not divisible by "
                         f"data.pool_width {pool}; pick a multiple of it")
    if 2 * crop >= seq_length:
        raise SeqnnError(f"{where}: data.crop_bp {crop} leaves nothing of data.seq_length "
                         f"{seq_length}; crop less than half of it")
    if crop % pool:
        raise SeqnnError(f"{where}: data.crop_bp {crop} is not divisible by data.pool_width "
                         f"{pool}; crop whole bins")
    brk = data.get("break_length")
    if brk and brk < seq_length:
        raise SeqnnError(f"{where}: data.break_length {brk} is shorter than data.seq_length "
                         f"{seq_length}, so every contig piece would be dropped; raise it or set "
                         "it to null")
    if data.get("folds", 8) in (1, 2):
        raise SeqnnError(f"{where}: data.folds must be 0 (train/valid/test split) or at least 3 "
                         "(test, valid and train folds)")
