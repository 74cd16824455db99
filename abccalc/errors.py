"""The one error type of abccalc."""


class AbcError(Exception):
    """A user-facing error: one line that names the file, node, dim or parameter at fault.

    The CLI prints ``abccalc: error: <message>`` and exits with status 2.
    """
