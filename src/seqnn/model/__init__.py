"""Models: params and presets, the block vocabulary, Keras layers and blocks, losses, metrics.

`spec`, `geometry`, `params` and `presets` are free of TensorFlow (validation, lengths and
receptive fields without building); `layers`, `blocks`, `build`, `pretrained` (published
weights), `losses` and `metrics` are Keras. Depends on `seqnn.data` only.
"""
