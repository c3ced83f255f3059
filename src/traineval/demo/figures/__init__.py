"""The demo's figures (matplotlib, Agg backend): one module per figure family, drawn by :mod:`.render`.

Which figure shows which claim is in the registry, :data:`traineval.demo.claims.FIGURES`.
matplotlib is optional (``pip install matplotlib``, or the ``demo`` extra); :func:`._style.require_matplotlib`
says how to install it when it is missing. Every panel says which mode (``train()`` or
``eval()``) it shows; values that span decades get a log axis.
"""
