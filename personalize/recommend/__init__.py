"""Per-user recommendation: meta-learned cold-start rating prediction over item text.

Modules, in reading order: ``inputs`` (checking frames), ``catalogue`` (item ids and texts),
``config``, ``posterior`` (a user's taste in closed form), ``model`` (what is meta-learned),
``training`` (the meta-training loop), ``ranking`` (top-N scores), ``top_n`` (top-N of many users
over item blocks), ``similar`` (nearest items), ``sparse_input`` (a CSR ratings matrix as a frame),
``user_model`` and ``recommender`` (the public API), ``baselines`` and ``metrics`` (for the benchmark).
"""

from personalize.recommend.config import RecommenderConfig
from personalize.recommend.inputs import Columns
from personalize.recommend.recommender import Recommender, TopItems
from personalize.recommend.user_model import UserModel

__all__ = ["Columns", "Recommender", "RecommenderConfig", "TopItems", "UserModel"]
