"""Population ("precise") BatchNorm statistics: ``te.recalibrate_batchnorm``.

Public names are re-exported by :mod:`traineval`; import them from there.
"""
