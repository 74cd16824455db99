"""``python -m abccalc`` runs the CLI."""

from cli import main

main()
