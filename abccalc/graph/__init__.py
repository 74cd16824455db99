"""Stage 1, the graph: names, YAML, the op registry, the builder and the spec reader.

Everything here validates user input into frozen, typed objects; nothing later in
the pipeline reads a file.
"""
