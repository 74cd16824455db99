"""Stage 4, output: tables, derivation traces, generated PyTorch code and files.
"""
