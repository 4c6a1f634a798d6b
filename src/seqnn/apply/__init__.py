"""Applying trained models: ensembles and test-time augmentation, genome-wide prediction,
evaluation, gradient maps, ISM and variant effects. Depends on data, model and train.
"""
