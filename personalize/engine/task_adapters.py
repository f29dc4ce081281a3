"""Per-task LoRA updates added to the encoder's own Linear layers, for many tasks in one pass.

The engine never rewrites a model's layers. Each Linear an adapter may target carries one forward
hook (:func:`install_adapter_hooks`, once per model). The hook does nothing unless a pass runs
inside :func:`task_adapters`; then it adds the task's low-rank update to the Linear's output:

    y = W x + b + (alpha / r) * B_t A_t x        for the examples of task t

Inputs of a pass are laid out task-major, [T * N, S, features], so the update of all T tasks is two
batched matrix products over [T, N * S, features]. The adapter matrices are ordinary tensors of a
parameter dict (``layer4_query_A`` [T, r, in], ``layer4_query_B`` [T, out, r]), so gradients reach
them, and through them the meta-learned initialization (second order included). The active dict
lives in a context variable, so threads (a web app serving several people) never see each other's.

>>> import torch
>>> linear = torch.nn.Linear(3, 2)
>>> install_adapter_hooks({"layer0_query": linear})
1
>>> x = torch.randn(2 * 5, 4, 3)                            # 2 tasks x 5 examples, 4 tokens each
>>> params = {"layer0_query_A": torch.randn(2, 1, 3), "layer0_query_B": torch.randn(2, 2, 1)}
>>> with task_adapters(params, scaling=1.0):
...     adapted = linear(x)
>>> expected = linear(x[5:]) + x[5:] @ params["layer0_query_A"][1].T @ params["layer0_query_B"][1].T
>>> torch.allclose(adapted[5:], expected, atol=1e-6), torch.equal(linear(x), adapted)   # outside: plain
(True, False)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from personalize.errors import ConfigError


@dataclass(frozen=True)
class _ActiveAdapters:
    params: Mapping[str, torch.Tensor]
    scaling: float
    dropout: float
    training: bool


_ACTIVE: contextvars.ContextVar[_ActiveAdapters | None] = contextvars.ContextVar("task_adapters", default=None)


@contextlib.contextmanager
def task_adapters(params: Mapping[str, torch.Tensor], *, scaling: float, dropout: float = 0.0,
                  training: bool = False) -> Iterator[None]:
    """Inside this context, hooked Linears add the updates of ``params`` (names as in the module doc)."""
    token = _ACTIVE.set(_ActiveAdapters(params, scaling, dropout, training))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class AdapterHook:
    """The forward hook of one Linear: adds ``key``'s update when the active dict has it."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        active = _ACTIVE.get()
        if active is None:
            return None
        a = active.params.get(f"{self.key}_A")
        if a is None:
            return None
        b = active.params[f"{self.key}_B"]
        x = args[0]
        tasks = a.shape[0]
        if x.shape[0] % tasks:
            raise ConfigError(f"{self.key}: {x.shape[0]} sequences do not split into {tasks} tasks")
        flat = x.reshape(tasks, -1, x.shape[-1])
        if active.dropout:
            flat = F.dropout(flat, active.dropout, active.training)
        update = torch.bmm(torch.bmm(flat, a.transpose(1, 2)), b.transpose(1, 2)) * active.scaling
        return output + update.reshape(output.shape).to(output.dtype)


def install_adapter_hooks(linears: Mapping[str, torch.nn.Module]) -> int:
    """Hook each Linear (key -> module) once; returns how many were newly hooked.

    Installing again is a no-op, also on copies of a hooked model (``copy.deepcopy`` and int8 twins
    keep hooks), so no update is ever added twice.
    """
    added = 0
    for key, module in linears.items():
        hooks = [hook for hook in module._forward_hooks.values() if isinstance(hook, AdapterHook)]
        if hooks:
            if hooks[0].key != key:
                raise ConfigError(f"a Linear is hooked as {hooks[0].key!r} and asked to be {key!r}")
            continue
        module.register_forward_hook(AdapterHook(key))
        added += 1
    return added
