"""The bad-input suite's case table and runner (issue 12), shared by
``tests/test_bad_inputs.py`` and ``benchmarks/bad_input_report.py``."""
