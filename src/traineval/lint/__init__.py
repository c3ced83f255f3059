"""``traineval lint``: finds train/eval mode bugs in Python files and notebooks, statically.

Built on the standard library ``ast`` only: the linter never imports or runs the code it
reads. A per-file pass (in parallel for large trees) runs the local rules and records, for
each function, the mode-relevant events; a project index then follows calls across
functions and files for the flow rules (TE007–TE011).

>>> from traineval.lint import lint_source
>>> src = '''
... import torch
... model = Net()
... with torch.no_grad():
...     y = model(x)
... class Net(torch.nn.Module):
...     def forward(self, x):
...         return x
... '''
>>> [(f.code, f.line) for f in lint_source(src)]
[('TE007', 5)]
"""

from traineval.lint.config import LintConfig, load_config
from traineval.lint.engine import LintResult, lint_paths, lint_source

__all__ = ["LintConfig", "LintResult", "lint_paths", "lint_source", "load_config"]
