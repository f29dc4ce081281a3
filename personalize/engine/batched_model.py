"""The frozen encoder run over many tasks at once, each task with its own LoRA adapters and head.

Per-task parameters are stacked along a leading *task* dimension T. One forward pass serves all
tasks of a meta-batch (or thousands of users being adapted): the frozen weights are shared, and each
adapted Linear adds its task's low-rank update with two batched matrix products
(``x @ A_t^T @ B_t^T`` for every task t at once, :mod:`personalize.engine.task_adapters`). The
layers themselves are the encoder's own Hugging Face modules, for any architecture in
:data:`~personalize.engine.architectures.LAYOUTS`. Layers below the lowest adapted one are frozen
end to end, so :meth:`BatchedLoRAModel.frozen_prefix` computes them once per *distinct* input, under
``no_grad``, and inner-loop steps reuse the result.

Parameter names use no dots (they are also nn.ParameterDict keys): ``layer4_query_A`` (r x in),
``layer4_query_B`` (out x r), ``head_weight`` (outputs x features), ``head_bias`` (outputs). The head
reads the pooled embedding (hidden numbers) followed by the batch's side features, if the head takes
any (``HeadConfig.side_features``; a recommender's item vectors beside the item's text).

>>> import torch
>>> from personalize.encoder import tiny_encoder
>>> encoder = tiny_encoder(seed=0)
>>> model = BatchedLoRAModel(encoder, AdapterConfig(rank=2), HeadConfig(num_classes=3))
>>> init = model.init_parameters(seed=0)
>>> params = {name: value.expand(4, *value.shape) for name, value in init.items()}   # 4 tasks
>>> tokens = encoder.tokenize(["good", "bad", "fine"] * 4)
>>> ids, mask = tokens["input_ids"].view(4, 3, -1), tokens["attention_mask"].view(4, 3, -1)
>>> model.forward(params, model.frozen_prefix(ids, mask), mask).shape     # T x N x classes
torch.Size([4, 3, 3])
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from transformers.masking_utils import create_bidirectional_mask

from personalize.encoder import Encoder, require_engine_support
from personalize.engine.architectures import EncoderLayout
from personalize.engine.batch import TaskBatch
from personalize.engine.config import AdapterConfig, HeadConfig
from personalize.engine.task_adapters import install_adapter_hooks, task_adapters
from personalize.errors import ConfigError

Params = dict[str, torch.Tensor]


class BatchedLoRAModel:
    """Frozen encoder + per-task LoRA + per-task head, evaluated functionally over a task batch."""

    def __init__(self, encoder: Encoder, adapter: AdapterConfig, head: HeadConfig) -> None:
        self.layout = require_engine_support(encoder)  # the one check of the architecture
        self.encoder = encoder
        self.adapter = adapter
        self.head = head
        self.hidden_size: int = encoder.hidden_size
        self.num_layers: int = encoder.num_layers
        self.adapted_layers = adapter.adapted_layers(self.num_layers)
        self.first_adapted = self.adapted_layers[0]
        self._stacks: dict[int, _SplitStack] = {}

    @property
    def feature_size(self) -> int:
        """Width of the head's input: the pooled embedding and then the side features."""
        return self.hidden_size + self.head.side_features

    # --- parameters -------------------------------------------------------------------------------

    def adapter_shapes(self) -> dict[str, tuple[int, int]]:
        """Name -> shape of every LoRA matrix, in a fixed order."""
        shapes = {}
        layers = self.layout.layer_list(self.encoder.model)
        for index in self.adapted_layers:
            for target in self.adapter.target_modules:
                linear = layers[index].get_submodule(self.layout.targets[target])
                shapes[f"layer{index}_{target}_A"] = (self.adapter.rank, linear.in_features)
                shapes[f"layer{index}_{target}_B"] = (linear.out_features, self.adapter.rank)
        return shapes

    def init_parameters(self, seed: int = 0) -> Params:
        """Fresh adapters as PEFT makes them (A uniform in +-1/sqrt(in), B zero) and a zero head."""
        generator = torch.Generator().manual_seed(seed)
        params: Params = {}
        for name, shape in self.adapter_shapes().items():
            if name.endswith("_A"):
                bound = 1.0 / math.sqrt(shape[1])
                params[name] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            else:
                params[name] = torch.zeros(shape)
        params["head_weight"] = torch.zeros(self.head.outputs, self.feature_size)
        params["head_bias"] = torch.zeros(self.head.outputs)
        device = self.encoder.device
        return {name: value.to(device) for name, value in params.items()}

    # --- forward ----------------------------------------------------------------------------------

    @torch.no_grad()
    def frozen_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embeddings and every layer below the first adapted one, for inputs of shape [T, N, S].

        Each distinct token sequence is computed once, however many tasks contain it. Returns the
        hidden states [T, N, S, H] entering the first adapted layer.
        """
        tasks, examples, length = input_ids.shape
        inverse, first = distinct_rows(input_ids.reshape(-1, length))
        unique_ids = input_ids.reshape(-1, length)[first]
        unique_mask = attention_mask.reshape(-1, length)[first]
        stack = self._split_stack()
        hidden = stack.embeddings(input_ids=unique_ids)
        hidden = stack.run_lower(hidden, unique_mask)
        return hidden[inverse].reshape(tasks, examples, length, self.hidden_size)

    def prefix_of(self, batch: TaskBatch) -> torch.Tensor:
        """The batch's frozen-prefix states: precomputed ones if it carries them, else computed now."""
        if batch.prefix is None:
            return self.frozen_prefix(batch.input_ids, batch.attention_mask)
        if batch.prefix_layer != self.first_adapted:
            raise ConfigError(f"the batch carries states entering layer {batch.prefix_layer}, but this model's "
                              f"first adapted layer is {self.first_adapted}")
        return batch.prefix

    def text_features(self, params: Params, prefix: torch.Tensor, attention_mask: torch.Tensor,
                      training: bool = False) -> torch.Tensor:
        """Pooled sentence embeddings [T, N, H] from the frozen prefix through the adapted layers."""
        tasks, examples, length, hidden_size = prefix.shape
        with task_adapters(params, scaling=self.adapter.scaling, dropout=self.adapter.dropout, training=training):
            hidden = self._split_stack().run_upper(prefix.reshape(tasks * examples, length, hidden_size),
                                                   attention_mask.reshape(tasks * examples, length))
        hidden = hidden.reshape(tasks, examples, length, hidden_size)
        pooled = _masked_mean(hidden, attention_mask)
        return F.normalize(pooled, dim=-1) if self.head.normalize else pooled

    def _split_stack(self) -> _SplitStack:
        """The encoder model this pass runs (its int8 twin in an int8 inference pass), split at the
        first adapted layer, with the adapter hooks on its target Linears."""
        model = self.encoder.pass_model()
        stack = self._stacks.get(id(model))
        if stack is None or stack.model is not model:
            stack = self._stacks[id(model)] = _SplitStack(model, self.layout, self.first_adapted)
        return stack

    def join_side(self, text_features: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        """The head's input [T, N, H + F]: text features followed by the side features [T, N, F]."""
        wanted = self.head.side_features
        if wanted == 0:
            if side is not None:
                raise ConfigError(f"the batch carries {side.shape[-1]} side features per example, but the head "
                                  "takes none (HeadConfig.side_features = 0)")
            return text_features
        if side is None or side.shape[-1] != wanted or side.shape[:2] != text_features.shape[:2]:
            got = "none" if side is None else f"shape {list(side.shape)}"
            raise ConfigError(f"the head takes {wanted} side features per example "
                              f"([{text_features.shape[0]}, {text_features.shape[1]}, {wanted}]), the batch has {got}")
        return torch.cat([text_features, side.to(text_features.dtype)], dim=-1)

    def features(self, params: Params, prefix: torch.Tensor, attention_mask: torch.Tensor,
                 training: bool = False, side: torch.Tensor | None = None) -> torch.Tensor:
        """The head's input [T, N, H + F]: pooled embeddings, then the side features if the head takes any."""
        return self.join_side(self.text_features(params, prefix, attention_mask, training), side)

    def apply_head(self, params: Params, features: torch.Tensor) -> torch.Tensor:
        """Per-task head: logits [T, N, C] for classification, scores [T, N] for regression."""
        outputs = torch.einsum("tnh,toh->tno", features, params["head_weight"]) + params["head_bias"][:, None, :]
        return outputs.squeeze(-1) if self.head.kind == "regression" else outputs

    def forward(self, params: Params, prefix: torch.Tensor, attention_mask: torch.Tensor,
                training: bool = False, side: torch.Tensor | None = None) -> torch.Tensor:
        """Head outputs for every task's examples, from the frozen prefix (and the side features)."""
        return self.apply_head(params, self.features(params, prefix, attention_mask, training, side))

class _SplitStack:
    """A model's embeddings and its layer stack cut in two at layer ``split``: the stack module's own
    forward (masks, position biases and all) runs on ``layers[:split]`` or on ``layers[split:]``.

    The halves are shallow copies of the stack module that share every weight with the model and
    differ only in their list of layers; the model itself is never modified, except that the target
    Linears of every layer get their adapter hook (a no-op outside :func:`task_adapters`).
    """

    def __init__(self, model: torch.nn.Module, layout: EncoderLayout, split: int) -> None:
        self.model = model
        self.config = model.config
        self.embeddings = model.get_submodule(layout.embeddings)
        stack = model.get_submodule(layout.stack)
        layers = layout.layer_list(model)
        install_adapter_hooks({f"layer{index}_{target}": layer.get_submodule(path)
                               for index, layer in enumerate(layers) for target, path in layout.targets.items()})
        self.lower = _stack_with(stack, layout.layers, layers[:split]) if split > 0 else None
        self.upper = _stack_with(stack, layout.layers, layers[split:])

    def run_lower(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return hidden if self.lower is None else self._run(self.lower, hidden, attention_mask)

    def run_upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._run(self.upper, hidden, attention_mask)

    def _run(self, stack: torch.nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        return stack(hidden_states=hidden, attention_mask=mask)[0]


def _stack_with(stack: torch.nn.Module, attribute: str, layers: torch.nn.ModuleList) -> torch.nn.Module:
    """A shallow copy of ``stack`` whose ``attribute`` is ``layers`` (shared modules, nothing copied)."""
    view = copy.copy(stack)
    view._modules = dict(stack._modules)
    view._modules[attribute] = torch.nn.ModuleList(list(layers))
    return view


def _masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(-2) / weights.sum(-2).clamp_min(1.0)


def distinct_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For token rows [R, S]: ``inverse`` [R] (which distinct row each is) and ``first`` [U] (one
    original row per distinct row), so that ``rows[first][inverse]`` equals ``rows``.

    >>> inverse, first = distinct_rows(torch.tensor([[1, 2], [3, 4], [1, 2]]))
    >>> inverse.tolist(), torch.tensor([[1, 2], [3, 4], [1, 2]])[first].tolist()
    ([0, 1, 0], [[1, 2], [3, 4]])
    """
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse, _first_occurrence(inverse, len(unique))


def _first_occurrence(inverse: torch.Tensor, count: int) -> torch.Tensor:
    """For each unique row, the index of one row of the original that maps to it."""
    first = torch.empty(count, dtype=torch.long, device=inverse.device)
    first.scatter_(0, inverse, torch.arange(len(inverse), device=inverse.device))
    return first
