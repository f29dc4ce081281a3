"""Packing by length (engine/packing.py): groups cover every task once, stay in budget, keep every real
example, and adapt to the same numbers as one padded batch, in the batch's task order."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.encoder import tiny_encoder
from personalize.engine.batch import collate_tasks
from personalize.engine.config import AdapterConfig
from personalize.engine.inner_loop import adapt_by_gradient
from personalize.engine.packing import length_groups, packed_tasks, task_lengths, trimmed
from personalize.learners import create_learner
from personalize.learners.reptile import concat_examples


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 20)), min_size=1, max_size=60), st.integers(1, 4000))
def test_groups_cover_every_row_once_within_budget_shortest_first(rows, budget) -> None:
    lengths = torch.tensor([length for length, _ in rows])
    sizes = torch.tensor([size for _, size in rows])
    groups = length_groups(lengths, budget, sizes=sizes)
    assert sorted(torch.cat(groups).tolist()) == list(range(len(rows)))
    for group in groups:
        cost = len(group) * int(sizes[group].max()) * int(lengths[group].max())
        assert cost <= budget or len(group) == 1
    maxima = [int(lengths[group].max()) for group in groups]
    assert maxima == sorted(maxima)


def test_trimming_keeps_real_examples_after_a_hole() -> None:
    encoder = tiny_encoder(seed=0)
    support = collate_tasks(encoder, [["good", "bad"], ["fine", "awful", "so so", "great"]], [[1, 0], [1, 0, 0, 1]],
                            kind="classification")
    query = collate_tasks(encoder, [["bad", "great one", "the item"], ["poor"]], [[0, 1, 1], [0]],
                          kind="classification")
    tasks = concat_examples(support, query)  # task 0: 2 real, 2 padding, then 3 real examples
    assert tasks.example_mask[0].tolist() == [True, True, False, False, True, True, True]
    cut = trimmed(tasks.select([0]))
    assert cut.example_mask.sum() == 5 and cut.example_mask.shape[1] == 7
    assert cut.attention_mask.shape[-1] == int(task_lengths(tasks)[0][0])  # up to task 0's longest text
    assert torch.equal(cut.input_ids[0, :, :cut.input_ids.shape[-1]], tasks.input_ids[0, :, :cut.input_ids.shape[-1]])


def test_packed_adaptation_equals_one_padded_batch_in_task_order() -> None:
    encoder = tiny_encoder(seed=0)
    learner = create_learner("fomaml", encoder, adapter=AdapterConfig(rank=2), inner_steps=2, inner_lr=0.3)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for value in learner.init.values():
            value.add_(torch.randn(value.shape, generator=generator) * 0.2)
    long_text = " ".join(["a very long review that goes on"] * 4)
    texts = [["good", "bad"], [long_text, "meh"], ["fine", "awful", "ok"], ["nice", long_text], ["poor", "great"]]
    labels = [[1, 0], [1, 0], [1, 0, 0], [1, 0], [0, 1]]
    batch = collate_tasks(encoder, texts, labels, kind="classification")
    groups = packed_tasks(batch, max_tokens=24)
    assert len(groups) > 2  # the short tasks are not padded to the long text
    padded = sum(part.input_ids.numel() for _, part in groups)
    assert padded < batch.input_ids.numel()
    packed = adapt_by_gradient(learner.model, learner.init_params(), batch, steps=2, learning_rate=0.3,
                               max_tokens=24)
    whole = adapt_by_gradient(learner.model, learner.init_params(), batch, steps=2, learning_rate=0.3,
                              max_tokens=10**9)
    for t in range(len(texts)):
        alone = adapt_by_gradient(learner.model, learner.init_params(), batch.select([t]), steps=2,
                                  learning_rate=0.3)
        for name in whole:
            torch.testing.assert_close(packed[name][t], whole[name][t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(alone[name][0], whole[name][t], atol=1e-5, rtol=1e-4)
