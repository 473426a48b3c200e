"""mtl_tl: the code behind the book *Transfer Learning vs Multi-Task Learning*.

One module per concept, each explained by a chapter of the book:

============================  =====================================================
``mtl_tl.config``             profiles, devices, seeds: the first cell of each notebook
``mtl_tl.data``               tensors in memory, the fast loader, digits, splits
``mtl_tl.synthetic``          generated multi-label shapes and two-digit images
``mtl_tl.domains``            domain shifts of any image tensor
``mtl_tl.datasets``           torchvision datasets and your own ImageFolder (full profile)
``mtl_tl.models``             trunks, heads, freezing
``mtl_tl.tasks``              what a task is
``mtl_tl.engine``             the one training loop, one training step, evaluation
``mtl_tl.strategy``           what a loss strategy is (re-exported by ``engine``)
``mtl_tl.history``            what training leaves behind, checkpoints (re-exported by ``engine``)
``mtl_tl.streams``            how each task's data reaches the loop
``mtl_tl.distributed``        what the engine needs under ``torchrun``
``mtl_tl.transfer``           pretraining, fine-tuning recipes, eq. 3.1
``mtl_tl.adaptation``         DANN, CORAL, MMD: unlabelled target images
``mtl_tl.weighting``          loss weighting: equal, fixed, uncertainty, GradNorm, DWA
``mtl_tl.gradient_surgery``   PCGrad and gradient-conflict monitoring
``mtl_tl.multitask``          eq. 3.2, loss strategies by name, the sequential baseline
``mtl_tl.experiments``        several seeds, one tidy table
``mtl_tl.plots``              the book's figures
``mtl_tl.study``              the head-to-head study of chapter 4.3 (``python -m mtl_tl study``)
============================  =====================================================
"""

from .config import get_device, get_profile, seed_everything, setup

__version__ = "0.1.0"

__all__ = ["__version__", "setup", "get_profile", "get_device", "seed_everything"]
