"""ORSA workbook library: occlusion-robust facial expression recognition (ORSANet, RAN, DARELoss)."""

__version__ = "0.1.0"
