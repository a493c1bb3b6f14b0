"""The ``gusa`` command line: :mod:`.main` builds the parser, one module per verb does the work.

Verbs import the library inside their ``run`` so that ``gusa --help`` does not import torch.
"""
