"""Int8 copies of a frozen encoder for fast CPU inference (``precision="int8"``).

Every ``nn.Linear`` of the copy stores its weight as int8 with one scale per output row, and
quantizes its input on the fly, batch by batch (*dynamic* quantization): the matrix products run
on the int8 kernels of x86 CPUs (fbgemm or oneDNN, VNNI where the CPU has it). Embeddings, layer
norms, attention and the LoRA adapters stay float32. Only passes without gradients use the copy;
training and gradient-based adaptation always see the float32 weights.

The quantization itself is PyTorch's eager dynamic quantization (``torch.ao.quantization``), which
PyTorch now marks deprecated in favour of the separate ``torchao`` package; when a PyTorch build no
longer has it, :func:`int8_copy` says so and the other precisions keep working.

>>> import torch
>>> from personalize.encoder import tiny_encoder
>>> encoder = tiny_encoder(seed=0)
>>> twin = int8_copy(encoder.model)
>>> type(twin.encoder.layer[0].intermediate.dense).__name__
'Linear'
>>> twin.encoder.layer[0].intermediate.dense.weight().dtype
torch.qint8
>>> encoder.model.encoder.layer[0].intermediate.dense.weight.dtype   # the original is untouched
torch.float32
"""

from __future__ import annotations

import copy
import warnings

import torch

from personalize.errors import ConfigError


def int8_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (on CPU) whose Linear layers multiply in int8, per-channel weight scales.

    Raises :class:`ConfigError` if this PyTorch build has no dynamic int8 kernels.
    """
    engines = torch.backends.quantized.supported_engines
    try:
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # the deprecation notice: see the module docstring
            warnings.simplefilter("ignore")
            twin = quantize_dynamic(copy.deepcopy(model).cpu(), {torch.nn.Linear: per_channel_dynamic_qconfig})
            probe = next(module for module in twin.modules() if isinstance(module, Int8Linear))
            probe(torch.zeros(1, probe.in_features))  # fail here, not in the middle of a request
    except (ImportError, RuntimeError, StopIteration, AttributeError) as error:
        raise ConfigError(
            f"precision 'int8' needs PyTorch's dynamic int8 quantization, which this build cannot run "
            f"(quantized engines: {engines}; {type(error).__name__}: {error}). Fix: use precision='auto', "
            "'bfloat16' or 'float32'."
        ) from error
    return twin.eval().requires_grad_(False)


__all__ = ["int8_copy"]
