"""Export adapter weights as a standard PEFT LoRA folder.

The folder (``adapter_config.json`` + ``adapter_model.safetensors``) loads with
``peft.PeftModel.from_pretrained(encoder_model, path)`` and gives the same encoder outputs as the
adapted task inside personalize.

>>> import tempfile, torch
>>> from personalize.encoder import tiny_encoder
>>> from personalize.engine.config import AdapterConfig
>>> encoder = tiny_encoder()
>>> weights = {"layer1_query_A": torch.ones(2, 32), "layer1_query_B": torch.zeros(32, 2)}
>>> folder = export_peft(encoder, AdapterConfig(rank=2, layers=(1,), target_modules=("query",)), weights,
...                      tempfile.mkdtemp() + "/adapter")
>>> sorted(p.name for p in folder.iterdir())
['README.md', 'adapter_config.json', 'adapter_model.safetensors']
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch

from personalize.encoder import Encoder
from personalize.engine.architectures import ADAPTER_TARGETS, EncoderLayout, layout_of
from personalize.engine.config import AdapterConfig
from personalize.errors import ConfigError
from personalize.files import SavedKind, save_checked_tensors, staged_folder

CONFIG_FILE = "adapter_config.json"
KIND = SavedKind("PEFT adapter folder", CONFIG_FILE, frozenset({
    CONFIG_FILE, "adapter_model.safetensors", "README.md", "personalize_task_state.safetensors"}))


def peft_key(name: str, layout: EncoderLayout) -> str:
    """``layer4_attention_output_B`` -> ``base_model.model.encoder.layer.4.attention.output.dense.lora_B.weight``
    (for a BERT ``layout``)."""
    layer, rest = name.removeprefix("layer").split("_", 1)
    target, matrix = rest.rsplit("_", 1)
    if target not in ADAPTER_TARGETS or matrix not in ("A", "B") or not layer.isdigit():
        raise ConfigError(f"{name!r} is not an adapter weight name")
    return f"base_model.model.{layout.module_name(int(layer), target)}.lora_{matrix}.weight"


def export_peft(encoder: Encoder, adapter: AdapterConfig, weights: dict[str, torch.Tensor],
                path: str | Path, *, extra: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                overwrite: bool = False) -> Path:
    """Write one task's adapter ``weights`` (no task dimension) as a PEFT LoRA folder at ``path``.

    ``extra`` maps more safetensors file names to tensors written into the same folder, in the same
    atomic step. ``path`` must be new or an empty folder; ``overwrite=True`` also replaces a PEFT
    adapter folder (and nothing else).
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    layout = layout_of(encoder.model)
    lora = LoraConfig(
        r=adapter.rank,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=adapter.module_names(layout, encoder.num_layers),
    )
    base = copy.deepcopy(encoder.model).cpu()
    base.name_or_path = encoder.name  # recorded as the adapter's base model
    model = get_peft_model(base, lora)
    state = {peft_key(name, layout): value.detach().float().cpu() for name, value in weights.items()
             if name.startswith("layer")}
    expected = {key for key in model.state_dict() if "lora_" in key}
    found = {key.replace(".weight", ".default.weight") for key in state}
    if found != expected:
        raise ConfigError(f"adapter weights do not match the adapter layout: missing {sorted(expected - found)[:3]}, "
                          f"unexpected {sorted(found - expected)[:3]}")
    set_peft_model_state_dict(model, state)
    path = Path(path)
    with staged_folder(path, KIND, overwrite=overwrite) as staging:
        # Our adapters never touch the embeddings: say so, or peft asks the Hub about the base model's config.
        model.save_pretrained(str(staging), save_embedding_layers=False)
        for file_name, tensors in (extra or {}).items():
            save_checked_tensors(staging, file_name, tensors)
    return path
