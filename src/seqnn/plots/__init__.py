"""Figures of the report: training curves, accuracy, loci, interpretation (matplotlib, seaborn)."""
