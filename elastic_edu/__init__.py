"""elastic_edu: learn and use ELASTIC (Deng et al., arXiv 2408.09380).

ELASTIC replaces quadratic self-attention in a sequential recommender with a *linear
dispatcher attention* over k *interest experts*, retrieved per user from a large product-key
*interest memory bank*.

Axis letters, used in every einops pattern of this package:

    b  batch (users)            n  sequence position (history length N)
    h  attention heads          d  features (per head inside attention)
    e  interest experts (k)     m  sub-keys per half of the product-key memory
    c  candidates kept per half i  items (catalogue)
    s  memory slots (M = m*m)   t  target positions (training samples)

The rooms (docs/DESIGN.md, "Layout"): `histories` and `config` on the ground floor; `nn/`
(layers), `data/` (readers, splits, samplers), `models/` (each model with its facts, the
registry), `evaluation/` (ranking, statistics, analysis), `training/` (`fit`), `experiments/`
(`run`, `tune`), `bench/` (the cost sweep), `viz/` and `widgets/`; the command line on top.
Layers never import data or training code; models know no training loop; notebooks import from
this package and never redefine it.
"""

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.device import choose_device

__version__ = "0.1.0"
__all__ = ["ModelConfig", "TrainConfig", "choose_device", "__version__"]
