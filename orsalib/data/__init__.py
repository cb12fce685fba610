"""orsalib.data"""
