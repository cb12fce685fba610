"""orsalib.engine"""
