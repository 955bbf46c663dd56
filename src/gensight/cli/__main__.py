"""``python -m gensight.cli`` runs the ``gensight`` command."""

from gensight.cli.main import main

main()
