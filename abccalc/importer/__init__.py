"""Import a user's own PyTorch model (or a Hugging Face config) into a :class:`Graph`.

A front end beside the YAML reader: it produces a graph and what the model already does
(:class:`abccalc.importer.imported.Imported`); every later stage reads only that.
"""
