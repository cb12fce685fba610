"""orsalib.priors"""
