"""The frozen encoder run over many tasks at once, each task with its own LoRA adapters and head.

Per-task parameters are stacked along a leading *task* dimension T. One forward pass serves all
tasks of a meta-batch (or thousands of users being adapted): the frozen weights are shared, and each
adapted Linear adds its task's low-rank update with two batched matrix products
(``x @ A_t^T @ B_t^T`` for every task t at once). Layers below the lowest adapted one are frozen end
to end, so :meth:`BatchedLoRAModel.frozen_prefix` computes them once per *distinct* input, under
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

import math

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from personalize.encoder import Encoder, require_engine_support
from personalize.engine.batch import TaskBatch
from personalize.engine.config import TARGET_PATHS, AdapterConfig, HeadConfig
from personalize.errors import ConfigError

Params = dict[str, torch.Tensor]


class BatchedLoRAModel:
    """Frozen BERT + per-task LoRA + per-task head, evaluated functionally over a task batch."""

    def __init__(self, encoder: Encoder, adapter: AdapterConfig, head: HeadConfig) -> None:
        require_engine_support(encoder)  # the one check of the architecture; relax it there
        self.encoder = encoder
        self.adapter = adapter
        self.head = head
        self.bert = encoder.model
        config = self.bert.config
        self.hidden_size: int = config.hidden_size
        self.num_heads: int = config.num_attention_heads
        self.activation = ACT2FN[config.hidden_act]
        self.adapted_layers = adapter.adapted_layers(config.num_hidden_layers)
        self.first_adapted = self.adapted_layers[0]

    @property
    def feature_size(self) -> int:
        """Width of the head's input: the pooled embedding and then the side features."""
        return self.hidden_size + self.head.side_features

    # --- parameters -------------------------------------------------------------------------------

    def adapter_shapes(self) -> dict[str, tuple[int, int]]:
        """Name -> shape of every LoRA matrix, in a fixed order."""
        shapes = {}
        for index in self.adapted_layers:
            layer = self.bert.encoder.layer[index]
            for target in self.adapter.target_modules:
                linear = layer.get_submodule(TARGET_PATHS[target])
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
        token_types = torch.zeros_like(unique_ids)
        hidden = self.bert.embeddings(input_ids=unique_ids, token_type_ids=token_types)
        hidden = hidden.reshape(1, -1, self.hidden_size)
        keep = _attention_keep(unique_mask)
        for index in range(self.first_adapted):
            hidden = self._layer(index, hidden, keep, {}, training=False)
        hidden = hidden.reshape(len(unique_ids), length, self.hidden_size)
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
        hidden = prefix.reshape(tasks, examples * length, hidden_size)
        keep = _attention_keep(attention_mask.reshape(tasks * examples, length))
        for index in range(self.first_adapted, self.bert.config.num_hidden_layers):
            hidden = self._layer(index, hidden, keep, params, training)
        hidden = hidden.reshape(tasks, examples, length, hidden_size)
        pooled = _masked_mean(hidden, attention_mask)
        return F.normalize(pooled, dim=-1) if self.head.normalize else pooled

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

    # --- one BERT layer -----------------------------------------------------------------------------

    def _layer(self, index: int, hidden: torch.Tensor, keep: torch.Tensor, params: Params,
               training: bool) -> torch.Tensor:
        """BERT layer ``index`` (post-LayerNorm, eval mode) on hidden [T, N*S, H] with task adapters."""
        layer = self.bert.encoder.layer[index]

        def linear(target: str, x: torch.Tensor) -> torch.Tensor:
            path = TARGET_PATHS[target]
            int8 = self.encoder.int8_linear(index, path)  # a no-gradient pass with precision "int8"
            if int8 is not None:
                y = int8(x)
            else:
                module = layer.get_submodule(path)
                y = F.linear(x, module.weight, module.bias)
            a = params.get(f"layer{index}_{target}_A")
            if a is not None:
                b = params[f"layer{index}_{target}_B"]
                x = F.dropout(x, self.adapter.dropout, training) if self.adapter.dropout else x
                y = y + torch.bmm(torch.bmm(x, a.transpose(1, 2)), b.transpose(1, 2)) * self.adapter.scaling
            return y

        tasks, tokens, hidden_size = hidden.shape
        sequences, length = keep.shape[0], keep.shape[-1]
        head_dim = hidden_size // self.num_heads

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(sequences, length, self.num_heads, head_dim).transpose(1, 2)

        query, key, value = (split_heads(linear(t, hidden)) for t in ("query", "key", "value"))
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=keep)
        context = context.transpose(1, 2).reshape(tasks, tokens, hidden_size)
        attention = layer.attention.output
        hidden = _layer_norm(linear("attention_output", context) + hidden, attention.LayerNorm)
        inner = self.activation(linear("intermediate", hidden))
        return _layer_norm(linear("output", inner) + hidden, layer.output.LayerNorm)


def _attention_keep(attention_mask: torch.Tensor) -> torch.Tensor:
    """[sequences, S] 0/1 mask -> boolean [sequences, 1, 1, S] (True = attend), as SDPA wants."""
    return attention_mask.bool()[:, None, None, :]


def _layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


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
