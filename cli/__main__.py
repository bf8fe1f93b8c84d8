"""``python -m cli``: the same as the ``evidence-vault`` console script (:func:`cli.main`)."""

from cli import main

main()
