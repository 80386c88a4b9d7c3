"""ImageTasks draws N-way K-shot episodes exactly as specified, and conv4 is the MAML paper's net."""

import math

import pytest
import torch

from metalearn.convnet import conv4
from metalearn.fewshot.images import ImageTasks

SIZES = {"train": 6, "validation": 3, "test": 4}  # classes per split
PER_CLASS = 5
pytestmark = pytest.mark.usefixtures("one_thread")


def coded_images() -> dict[str, torch.Tensor]:
    """Image (class c, drawing d) of split s is filled with its code 100 * (c + 10 * s) + d, except
    pixel (0, 0), set to -1 so that a quarter turn shows where it went."""
    images = {}
    for s, (split, classes) in enumerate(SIZES.items()):
        code = 100 * (torch.arange(classes)[:, None] + 10 * s) + torch.arange(PER_CLASS)  # (C, M)
        x = code[:, :, None, None, None].expand(-1, -1, 1, 28, 28).float().clone()
        x[..., 0, 0] = -1
        images[split] = x
    return images


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class code, drawing and quarter turns (counterclockwise) of images x (..., 1, 28, 28)."""
    code = x[..., 0, 14, 14].long()
    corners = torch.stack([x[..., 0, 0, 0], x[..., 0, 27, 0], x[..., 0, 27, 27], x[..., 0, 0, 27]])
    return code // 100, code % 100, (corners == -1).long().argmax(dim=0)


def test_sample_shapes_and_labels():
    family = ImageTasks(coded_images(), ways=3, shots=2, queries=3, rotations=False)
    tasks = family.sample("train", 4, torch.Generator().manual_seed(0))
    assert tasks.support_x.shape == (4, 6, 1, 28, 28) and tasks.support_x.dtype == torch.float32
    assert tasks.query_x.shape == (4, 9, 1, 28, 28)
    assert tasks.support_y.tolist() == [[0, 0, 1, 1, 2, 2]] * 4
    assert tasks.query_y.tolist() == [[0, 0, 0, 1, 1, 1, 2, 2, 2]] * 4
    assert tasks.support_y.dtype == tasks.query_y.dtype == torch.int64


@pytest.mark.parametrize("split", list(SIZES))
def test_each_label_is_one_class_of_the_split_with_distinct_drawings(split):
    family = ImageTasks(coded_images(), ways=3, shots=2, queries=3, rotations=False)
    tasks = family.sample(split, 50, torch.Generator().manual_seed(1))
    s = list(SIZES).index(split)
    for t in range(50):
        s_class, s_drawing, _ = decode(tasks.support_x[t].view(3, 2, 1, 28, 28))
        q_class, q_drawing, _ = decode(tasks.query_x[t].view(3, 3, 1, 28, 28))
        classes = torch.cat([s_class, q_class], dim=1)  # (ways, shots + queries)
        assert (classes == classes[:, :1]).all()  # one class per label, support and query alike
        assert len(set(classes[:, 0].tolist())) == 3  # distinct classes within a task
        assert ((classes[:, 0] // 10 == s) & (classes[:, 0] % 10 < SIZES[split])).all()
        drawings = torch.cat([s_drawing, q_drawing], dim=1)
        assert all(len(set(row)) == 5 for row in drawings.tolist())  # no drawing used twice


def test_classes_labels_and_drawings_are_uniform():
    family = ImageTasks(coded_images(), ways=2, shots=1, queries=1, rotations=False)
    n = 6000
    tasks = family.sample("train", n, torch.Generator().manual_seed(2))
    classes, drawings, _ = decode(tasks.support_x)  # (n, 2)
    # Label 0 goes to each of the 6 classes with probability 1/6; a drawing is each of 5 w.p. 1/5.
    for counts, p in (
        (torch.bincount(classes[:, 0], minlength=6), 1 / 6),
        (torch.bincount(drawings.flatten(), minlength=5), 1 / 5),
    ):
        total = counts.sum().item()
        assert (counts - total * p).abs().max() < 5 * math.sqrt(total * p * (1 - p))


def test_rotations_make_four_classes_turned_consistently():
    family = ImageTasks(coded_images(), ways=5, shots=1, queries=2, rotations=True)
    assert family.n_classes("validation") == 12
    tasks = family.sample("validation", 400, torch.Generator().manual_seed(3))
    s_class, _, s_turns = decode(tasks.support_x)  # (T, 5)
    q_class, _, q_turns = decode(tasks.query_x.view(400, 5, 2, 1, 28, 28))  # (T, 5, 2)
    assert (q_class == s_class[..., None]).all() and (q_turns == s_turns[..., None]).all()
    assert torch.bincount(s_turns.flatten(), minlength=4).min() > 400  # all four turns, ~500 each
    pairs = s_class * 4 + s_turns  # a class is (character, turn): never twice in a task
    assert all(len(set(row)) == 5 for row in pairs.tolist())


def test_same_seed_same_tasks_other_seed_other_tasks():
    family = ImageTasks(coded_images(), ways=3, shots=1, queries=2, rotations=True)
    a, b, c = (family.sample("train", 8, torch.Generator().manual_seed(seed)) for seed in (5, 5, 6))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.support_x, c.support_x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ways=4), "ways=4 exceeds the 3 classes of the validation split; valid: 1..3"),
        (
            dict(ways=13, rotations=True),
            "ways=13 exceeds the 12 classes of the validation split; valid: 1..12",
        ),
        (
            dict(shots=3, queries=3),
            "shots + queries = 3 + 3 exceeds the 5 images per class; valid: shots + queries <= 5",
        ),
        (dict(shots=0), "shots=0; valid: an integer >= 1"),
        (dict(queries=0), "queries=0; valid: an integer >= 1"),
    ],
)
def test_impossible_settings_raise_one_line(kwargs, message):
    settings = dict(ways=2, shots=1, queries=1, rotations=False) | kwargs
    with pytest.raises(ValueError) as error:
        ImageTasks(coded_images(), **settings)
    assert str(error.value) == message


def test_bad_split_bad_n_and_bad_images_raise():
    family = ImageTasks(coded_images(), ways=2, shots=1, queries=1, rotations=False)
    with pytest.raises(ValueError, match="unknown split 'val'; valid: train, validation, test"):
        family.sample("val", 2, torch.Generator())
    with pytest.raises(ValueError, match="n=0 tasks"):
        family.sample("train", 0, torch.Generator())
    with pytest.raises(ValueError, match="expected exactly"):
        ImageTasks({"train": coded_images()["train"]}, 2, 1, 1, rotations=False)
    with pytest.raises(ValueError, match=r"images\['test'\] is torch.float32 of shape \(4, 5, 1, 14, 14\)"):
        ImageTasks(coded_images() | {"test": torch.zeros(4, 5, 1, 14, 14)}, 2, 1, 1, rotations=False)


def test_conv4_is_the_maml_network():
    model = conv4(5, torch.Generator().manual_seed(0))
    # 4 conv layers (9 * in * 64 weights + 64 biases), 4 BatchNorms (64 scales, 64 shifts), 64 -> 5 head.
    expected = (9 * 1 * 64 + 64) + 3 * (9 * 64 * 64 + 64) + 4 * 128 + (64 * 5 + 5)
    assert sum(p.numel() for p in model.parameters()) == expected == 112_261
    assert model(torch.rand(7, 1, 28, 28)).shape == (7, 5)
    assert model.features(torch.rand(7, 1, 28, 28)).shape == (7, 64, 1, 1)  # 28 -> 14 -> 7 -> 3 -> 1
    assert all(not m.track_running_stats for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_conv4_xavier_init_from_the_generator_alone():
    state = torch.get_rng_state()
    a, b, c = (conv4(5, torch.Generator().manual_seed(seed)) for seed in (0, 0, 1))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator was not used
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.head.weight, c.head.weight)
    w = a.features[1][0].weight  # (64, 64, 3, 3): Xavier bound sqrt(6 / (fan_in + fan_out))
    bound = math.sqrt(6 / (2 * 64 * 9))
    assert w.abs().max() <= bound and abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    assert all((m.bias == 0).all() for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_conv4_normalises_with_batch_statistics_in_eval_mode_too():
    model = conv4(3, torch.Generator().manual_seed(0))
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    train_out = model(x)
    model.eval()
    torch.testing.assert_close(model(x), train_out, rtol=0, atol=0)
    assert not torch.allclose(model(x[:4]), train_out[:4])  # the batch sets the statistics


def test_make_model_has_one_output_per_way():
    family = ImageTasks(coded_images(), ways=3, shots=1, queries=1, rotations=False)
    tasks = family.sample("test", 2, torch.Generator().manual_seed(0))
    assert family.make_model(torch.Generator().manual_seed(0))(tasks.query_x[0]).shape == (3, 3)


def test_with_queries_draws_more_queries_from_the_same_classes():
    family = ImageTasks(coded_images(), ways=2, shots=1, queries=1, rotations=True)
    more = family.with_queries(4)
    assert family.queries == 1 and more.queries == 4 and more.images is family.images
    tasks = more.sample("train", 3, torch.Generator().manual_seed(0))
    assert tasks.query_x.shape == (3, 8, 1, 28, 28) and tasks.query_y.tolist()[0] == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match=r"shots \+ queries = 1 \+ 5 exceeds the 5 images per class"):
        family.with_queries(5)


def test_a_family_moved_to_a_device_gathers_its_tasks_there_from_the_same_draws():
    """Issue 24: the images move once (`to`); every tensor of a task is made on their device, the
    indices drawn from the CPU generator, so a seed draws the same tasks there as on the CPU (the
    equality on a GPU is `make gpu-check`'s "tasks" check). On the meta device only shapes exist."""
    family = ImageTasks(coded_images(), ways=3, shots=2, queries=1, rotations=True)
    moved = family.to("meta")
    assert all(x.device.type == "meta" for x in moved.images.values())
    assert all(x.device.type == "cpu" for x in family.images.values())  # the original stays
    on_meta = moved.sample("train", 4, torch.Generator().manual_seed(0))
    on_cpu = family.sample("train", 4, torch.Generator().manual_seed(0))
    assert [t.device.type for t in on_meta] == ["meta"] * 4
    assert [(t.shape, t.dtype) for t in on_meta] == [(t.shape, t.dtype) for t in on_cpu]
    again = family.to("cpu").sample("train", 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, on_cpu))
    assert moved.with_queries(2).images is moved.images  # evaluation's family shares them
