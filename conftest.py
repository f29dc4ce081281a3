"""Collection settings for the whole repository: doctest modules of an optional extra that is not
installed (the scikit-learn estimator without scikit-learn, e.g. on a minimal GPU machine) are skipped."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("sklearn") else ["personalize/estimator.py"]
