"""orsalib.analysis: model complexity (``complexity``: params, FLOPs vs paper Table 5) and explanation tools.

Submodules are imported explicitly (``from orsalib.analysis.complexity import count_flops``) so that importing
the package stays cheap.
"""
