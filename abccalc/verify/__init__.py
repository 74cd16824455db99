"""Stage 5, verification: TP4 classification, the symbolic check of a user's
parametrization, the coordinate check and the combined verdict.
"""
