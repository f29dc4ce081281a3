"""State banks: the adapted state of millions of users (or thousands of tasks), stored and read back.

``store`` lays out the files (sharded safetensors, a parquet index, atomic parts); ``codecs`` turns
each model type's per-user state into rows and back into a working model.
"""

from personalize.bank.codecs import CODECS, ClassifierStates, RecommenderStates, codec_for
from personalize.bank.store import StateBank, StateGroup, VerifyReport

__all__ = ["CODECS", "ClassifierStates", "RecommenderStates", "StateBank", "StateGroup", "VerifyReport", "codec_for"]
