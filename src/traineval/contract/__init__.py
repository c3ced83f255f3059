"""The eval contract on a live model: ``te.check`` / ``te.assert_eval_contract`` (``TE21x``).

Public names are re-exported by :mod:`traineval`; import them from there.
"""
