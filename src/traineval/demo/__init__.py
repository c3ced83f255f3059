"""``traineval demo``: the claims of the article :data:`~traineval.demo.claims.ARTICLE` on train/eval modes,
reproduced, measured and pictured.

The registry :mod:`~traineval.demo.claims` lists every claim (its words, its experiment) and every
figure; :mod:`~traineval.demo.runner` trains the models (:mod:`~traineval.demo.data`,
:mod:`~traineval.demo.models`, :mod:`~traineval.demo.training`) and runs the experiments
(:mod:`traineval.demo.experiments`, one module per claim); :mod:`traineval.demo.figures` (matplotlib,
optional) and :mod:`~traineval.demo.report` show the results:

>>> from traineval.demo import CLAIMS, DemoConfig, run
>>> DemoConfig.make(quick=True).quick, CLAIMS[0].id
(True, 'C1')
"""

from traineval.demo.claims import ARTICLE, CLAIMS
from traineval.demo.runner import DemoConfig, DemoResults, run

__all__ = ["ARTICLE", "CLAIMS", "DemoConfig", "DemoResults", "run"]
