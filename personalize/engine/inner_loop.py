"""Per-task losses and batched gradient adaptation: the inner loop every optimization learner uses.

The loss of a task batch is the *sum* over tasks of each task's mean loss. Tasks share no
parameters, so the gradient of that sum with respect to task t's parameters is exactly task t's own
gradient: one backward pass adapts every task at once, and gives the same result as adapting the
tasks one at a time.

>>> import torch
>>> outputs = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])          # 1 task, 2 examples, 2 classes
>>> targets = torch.tensor([[0, 0]]); mask = torch.tensor([[True, False]])
>>> round(task_losses(outputs, targets, mask, "classification").item(), 4)   # padding ignored
0.1269
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from personalize.engine.batch import TaskBatch
from personalize.engine.batched_model import BatchedLoRAModel, Params
from personalize.engine.config import TaskKind
from personalize.engine.packing import packed_tasks, scattered


def task_losses(outputs: torch.Tensor, targets: torch.Tensor, example_mask: torch.Tensor,
                kind: TaskKind) -> torch.Tensor:
    """Mean loss of each task over its real examples: cross-entropy or squared error. Shape [T].

    Half-precision outputs (bf16 autocast on GPU) are upcast to float32; float64 stays float64.
    """
    if outputs.dtype in (torch.float16, torch.bfloat16):
        outputs = outputs.float()
    if kind == "classification":
        per_example = F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
    else:
        per_example = (outputs - targets.to(outputs.dtype)).pow(2).flatten()
    weights = example_mask.to(per_example.dtype)
    return (per_example.view_as(weights) * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def task_accuracy(outputs: torch.Tensor, targets: torch.Tensor, example_mask: torch.Tensor) -> torch.Tensor:
    """Fraction of each task's real examples whose argmax is the target. Shape [T]."""
    correct = (outputs.argmax(-1) == targets).to(torch.float32) * example_mask
    return correct.sum(1) / example_mask.sum(1).clamp_min(1)


def expand_to_tasks(params: Params, num_tasks: int) -> Params:
    """Every task starts from the same initialization: a [T, ...] view of each tensor, no copy."""
    return {name: value.expand(num_tasks, *value.shape) for name, value in params.items()}


def gradient_steps(
    model: BatchedLoRAModel,
    params: Params,
    prefix: torch.Tensor,
    batch: TaskBatch,
    *,
    steps: int,
    learning_rate: float | Params,
    create_graph: bool = False,
    training: bool = False,
) -> Params:
    """Take ``steps`` plain gradient steps on every task's loss, all tasks in one pass.

    ``params`` hold a leading task dimension and must be connected to the graph (require grad).
    ``learning_rate`` is a number, or a tensor per parameter name (Meta-SGD), broadcast over tasks.
    With ``create_graph`` the steps stay differentiable (second-order MAML); without it the gradients
    are constants, so the meta-gradient flows straight through (first-order MAML, Reptile).
    """
    kind = model.head.kind
    for _ in range(steps):
        outputs = model.forward(params, prefix, batch.attention_mask, training, batch.side)
        loss = task_losses(outputs, batch.targets, batch.example_mask, kind).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {
            name: value - (learning_rate[name] if isinstance(learning_rate, dict) else learning_rate) * grad
            for (name, value), grad in zip(params.items(), grads)
        }
    return params


def adapt_by_gradient(
    model: BatchedLoRAModel,
    init: Params,
    batch: TaskBatch,
    *,
    steps: int,
    learning_rate: float | Params,
    max_tokens: int | None = None,
) -> Params:
    """Test-time adaptation: start every task of ``batch`` from ``init`` and take ``steps`` steps.

    Tasks are adapted together in groups of similar length, each of at most ``max_tokens`` padded
    tokens (default: a budget per device, see :func:`default_chunk_tokens`) and each padded only to
    its own longest text and largest task (:mod:`personalize.engine.packing`). Tasks are independent
    and padding is masked, so grouping changes no result, while it wastes no compute on the padding
    of a batch's longest text and keeps activations small enough to stay in cache on CPU. The layers
    below the adapters run once per group as an inference pass (the encoder's inference precision,
    as when predicting); the steps themselves run at its training precision.
    Returns detached per-task parameters, in the batch's task order; nothing flows back into ``init``.
    """
    budget = max_tokens if max_tokens is not None else default_chunk_tokens(batch.input_ids.device)
    rates = ({name: rate.detach() for name, rate in learning_rate.items()}
             if isinstance(learning_rate, dict) else learning_rate)
    pieces = []
    for indices, part in packed_tasks(batch, budget):
        with torch.no_grad(), model.encoder.autocast(inference=True):  # frozen layers: an inference pass
            prefix = model.prefix_of(part).float()
        with torch.enable_grad(), model.encoder.autocast():
            begin = {name: value.detach().expand(part.num_tasks, *value.shape).clone().requires_grad_(True)
                     for name, value in init.items()}
            adapted = gradient_steps(model, begin, prefix, part, steps=steps, learning_rate=rates)
        pieces.append((indices, {name: value.detach() for name, value in adapted.items()}))
    return scattered(pieces, batch.num_tasks)


def default_chunk_tokens(device: torch.device) -> int:
    """Tokens adapted at once: about 5k on CPU (measured best on 2 cores, docs/engine-benchmark-cpu.md),
    effectively unlimited on GPU where one large batch keeps the device busy."""
    return 5_120 if device.type == "cpu" else 1 << 22
