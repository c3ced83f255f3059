"""The runtime guard: ``te.guard`` watches a training job for mode bugs (``TE1xx``), and
``te.allow`` declares a look-alike intended.

The folder is not called ``guard`` because ``traineval.guard`` is the public function.
Public names are re-exported by :mod:`traineval`; import them from there.
"""
