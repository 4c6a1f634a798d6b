"""Data preparation: DNA encoding, genomes, coverage tracks, track sheets, TFRecords, splits.

Nothing in this subpackage imports TensorFlow or Keras (a test enforces it): the workflow
imports it at DAG time and its jobs run in light processes.
"""
