"""Import a user's own PyTorch model (or a Hugging Face config) into a :class:`Graph`.

A front end beside the YAML reader: it produces a graph and what the model already does
(:class:`abccalc.importer.imported.Imported`); every later stage reads only that. The
entry point is :func:`abccalc.importer.load.load_model`; torch is imported only there, so
importing this package costs nothing. Modules: ``model`` (the MODEL argument and its
knobs), ``trace`` (the aten-level trace on ``meta``), ``atoms`` and ``axes`` (dims as
atoms), ``nodes`` and ``pointwise`` (ops onto op units), ``load`` (dim names, the graph,
recorded constants). How it maps and what it cannot see: docs/import.md.
"""
