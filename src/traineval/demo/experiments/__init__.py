"""The experiments behind the article's claims (C1–C8) and the two traps beyond it (T1, T2): one module each.

Each module's ``measure(ctx)`` takes the trained models and data (:class:`~._context.Context`)
and returns an :class:`~traineval.demo.outcome.Outcome`: the numbers measured and a verdict
*computed from those numbers*. The claims' words, and which experiment and figure belong to
which claim, are in the registry, :mod:`traineval.demo.claims`.

Experiments never modify the trained models they are given: anything that runs a model in
training mode works on a ``copy.deepcopy``. Several of them run a model in training mode on
test data on purpose, to measure what that does; those lines carry a ``# noqa`` for
``traineval lint`` that says why.
"""
