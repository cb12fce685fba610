"""orsalib.analysis"""
