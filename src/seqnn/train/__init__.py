"""Training: the train block's options, tf.data pipelines, the resumable loop, devices.

`gpus` is free of TensorFlow (a job claims its GPU before TensorFlow starts). Depends on
`seqnn.data` and `seqnn.model`.
"""
