"""Stage 2, the scaling calculus: exponent arithmetic, size propagation and the solver
(TP4 §3/§5, TP5 App. J and Table 14).
"""
