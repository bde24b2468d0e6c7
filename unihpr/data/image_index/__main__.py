"""``python -m unihpr.data.image_index``: the same as ``unihpr build-image-index``.

A ``__main__`` module of its own, so that running the package does not import
it a second time (runpy's RuntimeWarning when ``unihpr.data`` has imported it).
"""

from unihpr.data.image_index import main

raise SystemExit(main(prog="python -m unihpr.data.image_index"))
