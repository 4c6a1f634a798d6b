"""Fine-tuning in `seqnn.train.loop.train`: the transfer block and the pretrained weights.

`seqnn train PARAMS DATA --restore WEIGHTS [--trunk]` starts from WEIGHTS (a seqnn `.keras` or a
Basenji / baskerville `.h5`): with `--trunk` the trunk only, under the params' head for the data's
tracks (new, randomly initialised); without, the whole model, the pretrained head included
(same tracks). The params' `transfer` block (`seqnn.model.transfer`; default `mode: full`) then
sets what trains, and the saved models have their adapters merged or recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from seqnn import SeqnnError
from seqnn.model.build import load_model
from seqnn.model.params import head_lists, model_params, transfer_options
from seqnn.model.presets import load_params
from seqnn.model.pretrained import restore_weights, single_head_params
from seqnn.model.transfer import exported, transfer_model

log = logging.getLogger("seqnn")


@dataclass(frozen=True)
class FineTune:
    """Transfer options (`seqnn.model.params.transfer_options`) and the weights to start from."""

    opts: dict
    weights: str | None = None
    trunk: bool = False

    @classmethod
    def of(cls, params: dict, weights=None, trunk: bool = False, where: str = "params"):
        """The fine-tuning of `params` (its transfer block) from `weights`; None for plain
        training (no block, no weights)."""
        opts = transfer_options(params, where)
        if weights is None:
            if trunk:
                raise SeqnnError("train: --trunk restores a pretrained trunk; give --restore "
                                 "WEIGHTS too")
            if opts is None:
                return None
            log.warning("%s: a transfer block but no pretrained weights (--restore): "
                        "fine-tuning a randomly initialised model", where)
        return cls(opts or transfer_options({"transfer": {}}), None if weights is None
                   else str(weights), trunk)

    def prepare(self, model, trunk_ids: set, restore: bool = True):
        """`model` (from `build_parts`) with the pretrained weights (if `restore`), adapters and
        trainable flags of the transfer block."""
        if restore and self.weights:
            copied = restore_weights(model, self.weights, trunk_ids if self.trunk else None)
            log.info("restored %d tensors of the %s from %s", copied,
                     "trunk" if self.trunk else "model", self.weights)
        return transfer_model(model, trunk_ids, self.opts)

    def export(self, model, params: dict):
        """The model and params to save (`seqnn.model.transfer.exported`)."""
        return exported(model, params, self.opts)

    def fingerprint(self) -> dict:
        """What a resumed fine-tuning must share with the checkpoint."""
        return {"transfer": self.opts, "weights": self.weights, "trunk": self.trunk}


def pretrained_params(weights, tracks: int, transfer: dict, *, params=None,
                      head: int = 0) -> tuple[dict, bool]:
    """Params to fine-tune pretrained `weights` on data of `tracks` tracks, and whether only
    the trunk is restored (the workflow's `model: {pretrained: ...}` with `transfer`).

    The model is the pretrained one: a seqnn `.keras` carries its params; a baskerville `.h5`
    needs its `params` file (head number `head` of it). Its head is kept when it predicts
    `tracks` tracks, else replaced by one of `tracks` units (trunk restored only). The params
    get the `transfer` block; its `train` mapping, if any, replaces keys of their train block.
    """
    transfer = dict(transfer)
    train = transfer.pop("train", {})
    if Path(weights).suffix == ".keras":
        base = load_model(weights)[1]["params"]
        if base is None:
            raise SeqnnError(f"{weights}: carries no params; save it with seqnn (train or "
                             "import)")
    elif params is None:
        raise SeqnnError(f"{weights}: baskerville weights need their params file; set "
                         "model.pretrained.params (the params.json they were trained with)")
    else:
        base = load_params(params)
    base, _ = single_head_params(base, head, params or weights)
    model = model_params(base)
    name = next(iter(head_lists(model)))
    last = model[name][-1] if isinstance(model[name], list) else model[name]
    keep = last.get("units") == tracks
    if not keep:
        last["units"] = tracks
    return {**base, "train": {**base.get("train", {}), **train}, "transfer": transfer}, not keep
