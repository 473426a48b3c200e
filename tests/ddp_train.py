"""The same fit() call in one process or under torchrun (used by test_distributed.py).

    python tests/ddp_train.py OUT_DIR
    torchrun --nproc_per_node=2 tests/ddp_train.py OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

import torch

from mtl_tl.config import seed_everything
from mtl_tl.data import load_digits
from mtl_tl.engine import FitOptions, fit
from mtl_tl.models import SmallCNN, linear_head
from mtl_tl.tasks import Task

GLOBAL_BATCH = 64

out = Path(sys.argv[1])
world_size = int(os.environ.get("WORLD_SIZE", "1"))
rank = int(os.environ.get("RANK", "0"))
torch.set_num_threads(1)
train, test = load_digits(8, seed=0)
train = train.subset(torch.arange(1280))  # a multiple of the global batch: identical batches
seed_everything(0)
trunk = SmallCNN(1, 8, 2, norm="group")  # batch-size independent, unlike batch norm
task = Task("digit", linear_head(trunk.out_features, 10), train=train, test=test)
history = fit(trunk, task, epochs=2, lr=3e-3, batch_size=GLOBAL_BATCH // world_size, device="cpu",
              options=FitOptions(checkpoint=out / f"ckpt-{world_size}.pt"))
weights = torch.cat([p.detach().flatten() for p in list(trunk.parameters()) + list(task.head.parameters())])
(out / f"result-{world_size}-rank{rank}.json").write_text(json.dumps({
    "records": history.records, "weights": weights.tolist(), "examples": history.examples,
}))
