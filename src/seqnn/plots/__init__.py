"""Figures of the report (matplotlib, seaborn); never imports TensorFlow or Keras.

- style: the common style, grid and message figures, `save`
- report: training curves, accuracy, loci, data overview, HTML pages, the `plots` rule's set
- interpret: sequence logos, ISM heatmaps, variant effects, the `interpret_plots` rule's set
"""
