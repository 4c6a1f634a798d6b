"""Models: params and presets, the block vocabulary, Keras layers and blocks, losses, metrics.

`spec`, `geometry`, `params` and `presets` are free of TensorFlow (validation, lengths and
receptive fields without building); `layers`, `conv`, `attention`, `augment`, `blocks`,
`build`, `losses`, `metrics` and the importers of published weights (`pretrained`:
Basenji/baskerville HDF5, `pretrained_enformer`: enformer-pytorch) are Keras. Depends on
`seqnn.data` only.
"""
