"""The mode system itself: reading and restoring modes, policies that survive ``train()``,
which modules depend on the mode, the mode tree, and tracing what a forward calls.

Public names are re-exported by :mod:`traineval`; import them from there.
"""
