"""Where the parts the engine needs sit inside each Hugging Face encoder architecture.

The engine runs the encoder's *own* modules (embeddings, layer stack, attention), never a copy of
them. It only needs to know, per architecture, where three things are: the embeddings module, the
module that runs the stack of layers, and the Linear layers inside one layer that an adapter may
target. Adapter targets have architecture-neutral names (``query``, ``value``, ``intermediate``, ...)
so that one :class:`~personalize.engine.config.AdapterConfig` means the same on every encoder.

>>> layout = LAYOUTS["distilbert"]
>>> layout.module_name(3, "query"), layout.module_name(3, "intermediate")
('transformer.layer.3.attention.q_lin', 'transformer.layer.3.ffn.lin1')
>>> layout_of_type("deberta-v2")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.errors.ConfigError: LoRA adapters and meta-learners do not run on 'deberta-v2' encoders yet; ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from personalize.errors import ConfigError, require

ADAPTER_TARGETS: tuple[str, ...] = ("query", "key", "value", "attention_output", "intermediate", "output")
"""Architecture-neutral names of the Linear layers of one transformer layer an adapter can target."""

_BERT_TARGETS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "intermediate": "intermediate.dense",
    "output": "output.dense",
}


@dataclass(frozen=True)
class EncoderLayout:
    """Module paths of one architecture: ``embeddings`` and ``stack`` from the model, ``targets``
    (adapter target -> Linear path) from one layer of ``stack.layers``."""

    embeddings: str
    stack: str
    targets: dict[str, str] = field(default_factory=dict)
    layers: str = "layer"

    def __post_init__(self) -> None:
        missing = sorted(set(ADAPTER_TARGETS) - set(self.targets))
        require(set(self.targets) == set(ADAPTER_TARGETS),
                f"an encoder layout names every adapter target; missing {missing}, got {sorted(self.targets)}")

    def layer_list(self, model: torch.nn.Module) -> torch.nn.ModuleList:
        """The model's transformer layers, in order."""
        return model.get_submodule(f"{self.stack}.{self.layers}")

    def module_name(self, layer: int, target: str) -> str:
        """Fully qualified name of layer ``layer``'s ``target`` Linear in the model (as peft names it)."""
        return f"{self.stack}.{self.layers}.{layer}.{self.targets[target]}"

    def check(self, model: torch.nn.Module, model_type: str) -> None:
        """ConfigError unless every path of this layout exists in ``model`` and ends at a Linear."""
        try:
            model.get_submodule(self.embeddings)
            layers = self.layer_list(model)
            for layer in layers:
                for path in self.targets.values():
                    linear = layer.get_submodule(path)
                    require(hasattr(linear, "in_features") and hasattr(linear, "out_features"),
                            f"{path} is a {type(linear).__name__}, not a Linear")
        except (AttributeError, ConfigError) as error:
            raise ConfigError(f"this {model_type!r} encoder ({type(model).__name__}) is not laid out as the engine "
                              f"expects: {error}. Fix: load the architecture's base model class (AutoModel), not a "
                              "task model with a head.") from error


LAYOUTS: dict[str, EncoderLayout] = {
    # BERT and the models built from its layer (sentence-transformers' MiniLM, E5 and BGE are BERTs).
    "bert": EncoderLayout(embeddings="embeddings", stack="encoder", targets=_BERT_TARGETS),
    "roberta": EncoderLayout(embeddings="embeddings", stack="encoder", targets=_BERT_TARGETS),
    "xlm-roberta": EncoderLayout(embeddings="embeddings", stack="encoder", targets=_BERT_TARGETS),
    "mpnet": EncoderLayout(embeddings="embeddings", stack="encoder", targets={
        "query": "attention.attn.q",
        "key": "attention.attn.k",
        "value": "attention.attn.v",
        "attention_output": "attention.attn.o",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
    }),
    "distilbert": EncoderLayout(embeddings="embeddings", stack="transformer", targets={
        "query": "attention.q_lin",
        "key": "attention.k_lin",
        "value": "attention.v_lin",
        "attention_output": "attention.out_lin",
        "intermediate": "ffn.lin1",
        "output": "ffn.lin2",
    }),
}
"""``config.model_type`` -> layout, for every architecture the engine runs (each is tested on a tiny
random model against Hugging Face and peft: tests/test_architectures.py)."""


def model_type_of(model: torch.nn.Module) -> str:
    """The model's ``config.model_type`` (its class name when it has no config)."""
    return getattr(getattr(model, "config", None), "model_type", type(model).__name__)


def layout_of_type(model_type: str) -> EncoderLayout:
    """The layout of architecture ``model_type``; ConfigError naming the supported ones otherwise."""
    if model_type not in LAYOUTS:
        raise ConfigError(
            f"LoRA adapters and meta-learners do not run on {model_type!r} encoders yet; they run on "
            f"{', '.join(LAYOUTS)} encoders (all-MiniLM-L6-v2, all-mpnet-base-v2, E5, BGE, RoBERTa, XLM-R, "
            "DistilBERT). Fix: pick an encoder of one of those architectures; Encoder.embed works on this one.")
    return LAYOUTS[model_type]


def layout_of(model: torch.nn.Module) -> EncoderLayout:
    """The checked layout of ``model``: the architecture is supported and its modules are where expected."""
    model_type = model_type_of(model)
    layout = layout_of_type(model_type)
    layout.check(model, model_type)
    return layout
