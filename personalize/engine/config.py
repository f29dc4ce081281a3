"""What sits on the frozen encoder: which LoRA adapters, and which task head.

>>> config = AdapterConfig(rank=4, layers=(4, 5))
>>> config.scaling
4.0
>>> from personalize.engine.architectures import LAYOUTS
>>> config.module_names(LAYOUTS["bert"], num_layers=6)[:2]
['encoder.layer.4.attention.self.query', 'encoder.layer.4.attention.self.value']
>>> config.module_names(LAYOUTS["mpnet"], num_layers=6)[:2]
['encoder.layer.4.attention.attn.q', 'encoder.layer.4.attention.attn.v']
>>> AdapterConfig(target_modules=("query", "gate"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: AdapterConfig.target_modules: unknown module 'gate'; choose among query, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from personalize.engine.architectures import ADAPTER_TARGETS, EncoderLayout
from personalize.errors import ConfigError, require

TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class AdapterConfig:
    """LoRA adapters on the frozen encoder: ``W x + (alpha / rank) * B A x`` on each target Linear."""

    rank: int = 8
    """Rank r of each low-rank update; parameters per target are r * (in + out)."""
    alpha: float = 16.0
    """LoRA scaling numerator: the update is multiplied by alpha / rank."""
    dropout: float = 0.0
    """Dropout on the adapter's input during meta-training (0 = none)."""
    target_modules: tuple[str, ...] = ("query", "value")
    """Which Linear layers of each adapted layer get an adapter, by architecture-neutral name
    (``ADAPTER_TARGETS``; where each sits in an architecture: ``architectures.LAYOUTS``)."""
    layers: tuple[int, ...] | None = None
    """Which encoder layers get adapters (0-based); None = all. Layers below the lowest adapted one
    are frozen end to end, so their output is computed once per distinct input and reused."""

    def __post_init__(self) -> None:
        require(isinstance(self.rank, int) and self.rank >= 1,
                f"AdapterConfig.rank must be an int >= 1, got {self.rank!r}")
        require(self.alpha > 0, f"AdapterConfig.alpha must be > 0, got {self.alpha!r}")
        require(0.0 <= self.dropout < 1.0, f"AdapterConfig.dropout must be in [0, 1), got {self.dropout!r}")
        require(len(self.target_modules) >= 1, "AdapterConfig.target_modules must name at least one module")
        for name in self.target_modules:
            require(name in ADAPTER_TARGETS, f"AdapterConfig.target_modules: unknown module {name!r}; "
                                             f"choose among {', '.join(ADAPTER_TARGETS)}")
        require(len(set(self.target_modules)) == len(self.target_modules),
                f"AdapterConfig.target_modules has duplicates: {self.target_modules}")
        if self.layers is not None:
            require(len(self.layers) >= 1 and all(isinstance(i, int) and i >= 0 for i in self.layers),
                    f"AdapterConfig.layers must be None or non-negative layer indices, got {self.layers!r}")
            require(len(set(self.layers)) == len(self.layers), f"AdapterConfig.layers has duplicates: {self.layers}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def adapted_layers(self, num_layers: int) -> tuple[int, ...]:
        """The sorted adapted layer indices for an encoder with ``num_layers`` layers."""
        if self.layers is None:
            return tuple(range(num_layers))
        too_deep = [i for i in self.layers if i >= num_layers]
        if too_deep:
            raise ConfigError(f"AdapterConfig.layers {too_deep} do not exist: the encoder has {num_layers} layers")
        return tuple(sorted(self.layers))

    def module_names(self, layout: EncoderLayout, num_layers: int) -> list[str]:
        """Fully qualified names of the adapted Linear modules in a model of ``layout`` (as peft names them)."""
        return [layout.module_name(i, t) for i in self.adapted_layers(num_layers) for t in self.target_modules]


@dataclass(frozen=True)
class HeadConfig:
    """The task head on the mean-pooled, adapter-tuned sentence embedding."""

    kind: TaskKind = "classification"
    """'classification' (logits over classes) or 'regression' (one real-valued score, e.g. a rating)."""
    num_classes: int = 2
    """Number of classes the head scores (ignored for regression)."""
    normalize: bool = False
    """L2-normalise the pooled embedding before the head (and before prototypes in metric learners)."""
    side_features: int = 0
    """Per-example features given beside the text (``TaskBatch.side``, F numbers per example), joined
    to the pooled embedding before the head: a recommender's collaborative item vectors, say. 0 = none."""

    def __post_init__(self) -> None:
        require(self.kind in ("classification", "regression"),
                f"HeadConfig.kind must be 'classification' or 'regression', got {self.kind!r}")
        require(isinstance(self.num_classes, int) and self.num_classes >= 2,
                f"HeadConfig.num_classes must be an int >= 2, got {self.num_classes!r}")
        require(isinstance(self.side_features, int) and self.side_features >= 0,
                f"HeadConfig.side_features must be an int >= 0, got {self.side_features!r}")

    @property
    def outputs(self) -> int:
        return self.num_classes if self.kind == "classification" else 1


def config_from_dict(config_class: type, raw: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from ``config_to_dict`` output (lists become tuples again)."""
    return config_class(**{key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()})
