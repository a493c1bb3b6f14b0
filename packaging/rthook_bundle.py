"""PyInstaller runtime hook of GuSA Studio: runs before the entry script in the bundle.

The bundle leaves out triton (torch.compile's GPU back-end, ~900 MB, never
used by the app); torch's FLOP counter, which ``gusa info`` uses, warns about
its absence on every run. Silence that one logger: in the bundle the absence
is deliberate.
"""

import logging

logging.getLogger("torch.utils.flop_counter").setLevel(logging.ERROR)
