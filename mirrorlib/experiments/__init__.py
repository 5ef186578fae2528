"""Experiments behind the book's chapters, one module per chapter or paper figure.

Each module offers ``ci`` and ``paper`` presets (:func:`config`) and small functions that return
tidy :class:`pandas.DataFrame` tables; the chapters write those tables with
:func:`mirrorlib.results.write_table` and draw figures from them with :mod:`mirrorlib.plotting`.
Experiments build on the core modules (:mod:`mirrorlib.potentials`, ...) and never import
plotting.
"""
