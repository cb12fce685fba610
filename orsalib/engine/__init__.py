"""The training engine: ``fit`` (trainer), SAM, DDP, and evaluation of trained models (evaluate); it returns numbers,
figures are drawn in orsalib/viz/."""
