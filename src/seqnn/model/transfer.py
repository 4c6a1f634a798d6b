"""Fine-tuning with a `transfer` block (baskerville's hound_transfer.py): what trains, and the
model that is saved afterwards.

`transfer_model` adds the adapters of the block's mode to a model built by `build_parts` and
sets what trains, as baskerville does:

- `full`: everything;
- `linear`: the head only; the trunk is frozen, batch-norm statistics included (a frozen Keras
  batch norm normalises with its moving statistics and never updates them);
- `adapter`: the adapters and the head; `houlsby` and `houlsby_se` also train the trunk's layer
  norms, `locon` with `conv_select` equal to the number of convolutions trains the first one
  whole. Everything else is frozen.

`exported` turns the trained model into the one that is saved: LoRA, IA3 and LoCon are merged
(the original architecture and params), Houlsby adapters stay and are recorded in the params'
model block (`adapter`, `adapter_latent`, `conv_select`, `se_rank`, baskerville's names), so the
params rebuild the saved model.
"""

from __future__ import annotations

import copy

import keras

from seqnn.model import adapters
from seqnn.model.build import build_parts, deferred_weights, describe, model_summary
from seqnn.model.params import RECORDED_ADAPTERS, model_params, transfer_options


def transfer_model(model, trunk: set, opts: dict):
    """`model` with the adapters of transfer options `opts` (`transfer_options`) and trainable
    flags set for fine-tuning; `trunk` holds the ids of its trunk layers (`build_parts`)."""
    if opts["mode"] == "adapter":
        model = adapters.insert_adapters(
            model, trunk, opts["adapter"], latent=opts["adapter_latent"],
            lora_alpha=opts["lora_alpha"], conv_select=opts["conv_select"],
            conv_latent=opts["conv_latent"], locon_alpha=opts["locon_alpha"])
        trunk = trunk | adapters.adapter_ids(model)
    set_trainable(model, trunk, opts)
    return model


def set_trainable(model, trunk: set, opts: dict) -> None:
    """Freeze and unfreeze `model`'s layers for transfer options `opts` (see the module doc)."""
    model.trainable = True
    if opts["mode"] == "full":
        return
    adapter = opts["adapter"]
    whole = None
    if adapter == "locon":
        convs = [la for la in model.layers if id(la) in trunk and adapters.is_conv(la)]
        if adapters.conv_plan(len(convs), opts["conv_select"], adapter)[1]:
            whole = convs[0]
    norms = adapter in RECORDED_ADAPTERS
    for layer in model.layers:
        if id(layer) not in trunk:
            continue
        layer.trainable = opts["mode"] == "adapter" and (
            isinstance(layer, adapters.ADAPTER_LAYERS) or layer is whole
            or (norms and isinstance(layer, keras.layers.LayerNormalization)))
        if isinstance(layer, adapters.MERGEABLE):
            layer.layer.trainable = False


def transfer_summary(params: dict) -> dict:
    """`describe` of the model of `params` as its `transfer` block fine-tunes it (without one,
    as plain training sees it), weights never initialised."""
    opts = transfer_options(params)
    if opts is None:
        return model_summary(params)
    with deferred_weights():
        model = transfer_model(*build_parts(params), opts)
    return describe(model)


def exported(model, params: dict, opts: dict | None):
    """The model and params to save after fine-tuning `model` (built with transfer options
    `opts`): merged adapters, or Houlsby adapters recorded in the model block; the `transfer`
    block is dropped (the saved params build the saved model). Spends `model` when merging."""
    saved = copy.deepcopy(params)
    saved.pop("transfer", None)
    adapter = opts and opts["adapter"]
    if adapter in RECORDED_ADAPTERS:
        record = {"adapter": adapter, "adapter_latent": opts["adapter_latent"]}
        if adapter == "houlsby_se":
            record.update(conv_select=opts["conv_select"], se_rank=opts["conv_latent"])
        model_params(saved).update(record)
    elif adapter is not None:
        model = adapters.merge_adapters(model)
    model.trainable = True
    return model, saved

