"""Stage 3, parametrizations: gauges (TP5 Lemma J.1), presets, per-parameter
rules and users' params files.
"""
