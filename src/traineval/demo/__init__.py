"""``traineval demo``: the article's claims on train/eval modes reproduced, measured and pictured.

The pieces: :mod:`~traineval.demo.data` (generated images), :mod:`~traineval.demo.models`,
:mod:`~traineval.demo.training`, :mod:`~traineval.demo.experiments` (one function per claim),
:mod:`~traineval.demo.figures` (matplotlib, optional), :mod:`~traineval.demo.report` and
:mod:`~traineval.demo.runner`, which runs them all:

>>> from traineval.demo import DemoConfig, run
>>> DemoConfig.make(quick=True).quick
True
"""

from traineval.demo.runner import DemoConfig, DemoResults, run

__all__ = ["DemoConfig", "DemoResults", "run"]
