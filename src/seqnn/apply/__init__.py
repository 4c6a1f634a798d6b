"""Applying trained models. Depends on data, model and train; Keras-free modules are marked.

- ensemble: model files loaded and checked together, compiled inference, test-time augmentation
  (shifts, reverse complements), mean and variance over an ensemble's members
- tiling: windows along the genome, stitching their bins, runs, shards, cross-fold map
  (Keras-free)
- predict: genome-wide prediction of one shard (streamed through tf.data), embeddings, and the
  whole prediction at once for the command line
- gather: prediction shard files, read as one and gathered into bigWigs, region values and TSS
  summaries (Keras-free)
- accuracy: metrics on whole arrays (Spearman's ranks, peaks, Benjamini-Hochberg), ALL_TRACKS
  and cv_summary across folds (Keras-free)
- accumulate: streaming per-track statistics of an evaluation
- evaluate: accuracy of models on a split of a data directory (acc.tsv, examples.h5)
- attribution: the aggregate attributions explain and scores of gradients (Keras-free)
- interpreter: gradients and saturation mutagenesis averaged over an ensemble's members
- interpret: gradient maps and ISM of BED regions into HDF5, contribution bigWigs
- variants: variant effect scores of a VCF
- dropout: Monte-Carlo dropout clones of models (mc_n)
- outputs: output dtype, bins kept, every member streamed to HDF5, evaluation files
  (Keras-free)
- windows: whole-window predictions of BED regions
- hidden: a hidden layer's activations and gradients for BED regions
- filters: first-layer filters as PWMs, MEME files, PWM similarity
"""
