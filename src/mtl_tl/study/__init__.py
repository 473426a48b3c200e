"""One controlled study: when does transfer learning win, and when does multi-task learning win?

Chapter 4.3. The article promises "an in-depth comparison" of 迁移学习 (transfer
learning) and 多任务学习 (multi-task learning) and gives none. This package runs one, with
everything held fixed except the method: the same data generator
(:func:`mtl_tl.synthetic.make_shapes`), the same backbone
(:class:`~mtl_tl.models.SmallCNN`), the same optimiser and the same training budget.

The source task and the target task are the same *task* (name the shape: circle, square,
triangle or cross, or with ``label="colour"`` name its colour) in two *domains*: the
source domain (源域) is :data:`mtl_tl.synthetic.DOMAINS` ``["source"]``; the target
domain (目标域) is :meth:`~mtl_tl.synthetic.Domain.interpolate` ``(shift)``, from
near-identical (``"near"``, shift 0.2) to unrelated (``"unrelated"``, shift 1: inverted
contrast, any rotation, heavy texture and noise, hues moved by one colour class). The
source has plenty of labels; the target has ``k`` labels per class.

The methods (:data:`~mtl_tl.study.design.METHODS`):

======================  ===================================================================
``scratch``             target labels only, from a random initialisation
``transfer``            pretrain on the source, then fine-tune everything on the target with
                        a *new* head (:func:`mtl_tl.transfer.pretrain` + ``fine_tune(full)``)
``feature_extraction``  pretrain, then freeze the trunk and train a new head on the target
                        (``fine_tune(feature_extraction)``)
``sequential``          the article's schedule: source, then target, on the *same* model with
                        the *same* output layer (what :func:`mtl_tl.multitask.train_sequentially`
                        does with one head shared by both tasks)
``joint``               multi-task learning: eq. 3.1 with ``lambda = 1``, i.e. eq. 3.2 with two
                        tasks; each step one source batch and one target batch through one
                        shared trunk (共享表示), one head each
                        (:func:`mtl_tl.transfer.train_joint_objective`)
======================  ===================================================================

``sequential`` differs from ``transfer`` in one thing only: it keeps the source head
instead of starting a new one. Both can forget the source; the study measures how much.

**The budget.** ``S = epochs * ceil(n_source / batch_size)`` optimisation steps is one
*phase*. With ``budget="steps"`` (the default) every method makes the same number of
optimiser updates, ``2 S``: ``scratch`` trains ``2 S`` steps on the target; ``transfer``,
``feature_extraction`` and ``sequential`` pretrain ``S`` steps on the source and adapt
``S`` steps on the target; ``joint`` makes ``2 S`` steps, each on one source batch *and*
one target batch, so it processes about twice the examples of ``transfer``. With
``budget="batches"`` every method draws the same number of batches, ``2 S``: ``joint``
then makes ``S`` updates of two batches each, seeing exactly the batches ``transfer``
sees, mixed instead of one phase after the other. Examples processed and wall time
(``examples`` and ``seconds`` of :class:`~mtl_tl.engine.History`) are reported per run, so the
compute each method used is in the table either way. Pretraining depends on the seed
only, so it runs once per seed and is shared by the cells (as one pretrained model serves
many targets in practice); its examples and seconds are *added* to every run that uses it.

**What is measured**, per (relatedness, k, method, seed): ``target_accuracy`` on a held-out
target test set; ``source_accuracy`` on a held-out source test set after all training (who
forgets? not defined for ``scratch``, which has no source head); ``examples``,
``seconds`` and ``steps`` (optimiser updates). :class:`StudyResult` holds the tidy table
and derives the summary (mean, std, n over seeds), the decision table (who wins each cell,
by how much, and whether the win passes the book's rule on the paired per-seed
differences) and the rules of thumb, each stated only when the numbers support it.

Example:
    >>> from mtl_tl.study import StudyConfig, run_study       # doctest: +SKIP
    >>> result = run_study(StudyConfig.quick())               # doctest: +SKIP
    >>> result.decision_table()                               # doctest: +SKIP
    >>> result.rules()                                        # doctest: +SKIP

The parts, one module each: ``design`` (the methods, relatedness levels and
:class:`StudyConfig`), ``runner`` (:func:`run_study`, which hands each run one
``Cell``), ``decisions``
(:func:`decision_table`, :func:`derive_rules`) and ``result`` (:class:`StudyResult`).
Import everything from ``mtl_tl.study``.

The command line runs the same study: ``python -m mtl_tl study --profile full --out results/``.
"""

from __future__ import annotations

from .decisions import decision_table, derive_rules, rules_markdown
from .design import (
    BUDGETS,
    CONFIG_COLUMNS,
    LABELS,
    METHODS,
    METRICS,
    MIN_SEEDS,
    NEGLIGIBLE,
    NORMS,
    PRETRAINED_METHODS,
    RELATEDNESS,
    SOURCE_METHODS,
    UNRELATED_SHIFT,
    StudyConfig,
    relatedness_domain,
    relatedness_label,
    relatedness_shift,
)
from .result import StudyResult
from .runner import run_study

__all__ = [
    "METHODS",
    "SOURCE_METHODS",
    "PRETRAINED_METHODS",
    "RELATEDNESS",
    "LABELS",
    "BUDGETS",
    "NORMS",
    "METRICS",
    "MIN_SEEDS",
    "NEGLIGIBLE",
    "UNRELATED_SHIFT",
    "CONFIG_COLUMNS",
    "StudyConfig",
    "StudyResult",
    "run_study",
    "relatedness_shift",
    "relatedness_label",
    "relatedness_domain",
    "decision_table",
    "derive_rules",
    "rules_markdown",
]
