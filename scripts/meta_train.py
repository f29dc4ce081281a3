"""Meta-train the shipped sentiment classifier: the same command as ``personalize meta-fit``.

Every option, default and check is the command's (``personalize meta-fit --help``), and the code
path is the library's (:mod:`personalize.classifier_training`): this file only runs it, so a
checkout without the package's console scripts on PATH can still train. The suite defaults to
clothing-sentiment; meta-validation chooses the step, the learner and the prior strength; the
meta-test classes and Rotten Tomatoes are never read.

Examples::

    # the shipped sentiment model (Meta-SGD, one step of learned per-entry step sizes; 16 min on 2 cores)
    python scripts/meta_train.py --learner meta-sgd --inner-steps 1 --budget 1080 \\
        --multiclass DIR_OF_A_PROTONET_CLASSIFIER --out personalize/pretrained/sentiment --overwrite
    # the prototype classifier that takes tasks of 3+ classes (the defaults)
    python scripts/meta_train.py --out /tmp/protonet
    # a quick try
    python scripts/meta_train.py --out /tmp/sentiment --steps 20 --val-episodes 8
    # model selection between families within one budget
    python scripts/meta_train.py --out /tmp/sentiment --learner protonet,fomaml --budget 3600
    # re-choose only the prior strength of a saved prototype classifier
    python scripts/meta_train.py --out /tmp/protonet --retune-prior

With ``--checkpoint-dir`` an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import sys

from personalize.cli import main

if __name__ == "__main__":
    sys.exit(main(["meta-fit", *sys.argv[1:]]))
