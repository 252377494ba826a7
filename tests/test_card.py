"""Model cards: render -> parse round trip, the typed view, and what validation refuses."""

from __future__ import annotations

import math

import pytest

from dp_pose_zoo.card import (ZOO_TAG, Card, FileHash, PrivacyBlock, card_from_text, load_card, parse_card,
                              render_card, validate_card)
from dp_pose_zoo.errors import CardError

SHA = "ab" * 32


def block(**overrides) -> PrivacyBlock:
    values = dict(method="dp-sgd", epsilon=2.0, delta=1e-5, clipping_norm=0.1, strategy="scratch", epochs=3,
                  steps=30, sample_rate=0.1, noise_multiplier=1.2, accountant="prv")
    values.update(overrides)
    return PrivacyBlock(**values)


def text(privacy: PrivacyBlock | None = None, **kwargs) -> str:
    args = dict(name="tiny-dp", privacy=privacy or block(), weights_sha256=SHA, train_data="synthpose:private-train",
                pckh={"Mean": 61.234, "Mean@0.1": 12.5}, eval_data="synthpose:private-test")
    args.update(kwargs)
    return render_card(**args)


def with_privacy_line(card_text: str, key: str, value: str | None) -> str:
    """The card's text with one privacy field changed (``None``: removed) -- a hand-edited card."""
    lines = card_text.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith(f"  {key}:"))
    if value is None:
        del lines[index]
    else:
        lines[index] = f"  {key}: {value}\n"
    return "".join(lines)


def test_round_trip_gives_a_typed_view():
    card = validate_card(card_from_text(text()))
    assert isinstance(card, Card)
    assert card.privacy.epsilon == 2.0 and card.privacy.delta == 1e-5 and card.privacy.clipping_norm == 0.1
    assert card.privacy.method == "dp-sgd" and card.privacy.accountant == "prv" and card.private
    assert card.weights_sha256 == SHA and card.name == "tiny-dp"
    assert card.pckh == {"Mean": 61.23, "Mean@0.1": 12.5}
    assert card.train_data == "synthpose:private-train" and card.eval_data == "synthpose:private-test"
    assert ZOO_TAG in card.tags and card.data.library_name == "dp-pose-zoo"
    assert card.data.pipeline_tag == "keypoint-detection"
    assert card.text == text() and card.files == {}


def test_parse_card_still_returns_a_model_card_for_its_callers():
    privacy = parse_card(text()).data.to_dict()["privacy"]
    assert privacy["epsilon"] == 2.0 and privacy["privacy_unit"] == "one annotated person instance"


def test_a_fine_tunes_card_names_the_initial_models_data_and_terms_and_what_the_guarantee_covers():
    public = [{"data": "lsp:../shared/data/lspet", "weight": 1},
              {"data": "coco:coco/annotations/person_keypoints_train2017.json", "weight": 4}]
    card_text = text(train_data="mpii:mpii/annotations/mpii_train.json", base_model="runs/public",
                     base_model_data=public)
    card = card_from_text(card_text)
    # the front matter keeps the data the epsilon is about apart from the initial model's
    assert card.data.datasets == ["mpii:mpii/annotations/mpii_train.json"]
    assert card.data.base_model_datasets == ["lsp:../shared/data/lspet",
                                             "coco:coco/annotations/person_keypoints_train2017.json"]
    assert card.train_data == "mpii:mpii/annotations/mpii_train.json"
    assert card.base_model_data == "lsp:../shared/data/lspet + coco:coco/annotations/person_keypoints_train2017.json"
    assert card_from_text(text()).base_model_data is None  # trained from scratch: no such key
    body = card_text.split("\n---\n", 1)[1]
    public_part = body[body.index("Initialised from `runs/public`, trained on:"):]
    assert "Leeds Sports Pose" in public_part and "CC BY 4.0" in public_part and "seen 4 times" in public_part
    assert "MPII Human Pose" in body[:body.index("Initialised from")]  # the private data and its terms come first
    assert "guarantee covers the training data above, not the initial model's data" in public_part
    plain = text(privacy=block(method="non-private", epsilon=math.inf, delta=None, clipping_norm=None,
                               sample_rate=None, noise_multiplier=None, accountant=None),
                 base_model="runs/public", base_model_data=public)
    assert "Leeds Sports Pose" in plain and "guarantee covers" not in plain  # no guarantee to qualify


def test_non_private_card_is_accepted_and_says_so():
    t = text(block(method="non-private", epsilon=math.inf, delta=None, clipping_norm=None, sample_rate=None,
                   noise_multiplier=None, accountant=None), pckh=None, eval_data=None)
    assert "epsilon: .inf" in t
    card = validate_card(card_from_text(t))
    assert math.isinf(card.privacy.epsilon) and card.privacy.delta is None and not card.private
    assert card.pckh is None


def test_non_private_card_with_a_finite_epsilon_is_refused():
    t = text(block(method="non-private", epsilon=math.inf, delta=None, clipping_norm=None))
    with pytest.raises(CardError, match="non-private card must say epsilon .inf"):
        validate_card(card_from_text(with_privacy_line(t, "epsilon", "3.0")))


@pytest.mark.parametrize("key", ["epsilon", "delta", "clipping_norm"])
@pytest.mark.parametrize("value", [None, "null", "'high'", "-1"])
def test_dp_card_without_epsilon_delta_or_c_is_refused(key, value):
    bad = with_privacy_line(text(), key, value)
    with pytest.raises(CardError):
        validate_card(card_from_text(bad))


def test_dp_card_with_infinite_epsilon_or_delta_one_is_refused():
    with pytest.raises(CardError, match="epsilon must be a finite"):
        validate_card(card_from_text(with_privacy_line(text(), "epsilon", ".inf")))
    with pytest.raises(CardError, match="delta"):
        validate_card(card_from_text(with_privacy_line(text(), "delta", "1.0")))


def test_pdp_card_needs_a_disjoint_public_set():
    good = block(method="pdp-sgd", projection_dim=8, public_data={"name": "coco", "size": 100, "disjoint": True})
    validate_card(card_from_text(text(good)))
    overlapping = block(method="pdp-sgd", projection_dim=8, public_data={"name": "coco", "size": 100,
                                                                         "disjoint": False})
    with pytest.raises(CardError, match="disjoint"):
        validate_card(card_from_text(text(overlapping)))


@pytest.mark.parametrize("bad, match", [
    ("# just markdown\n", "no YAML front matter"),
    ("---\nlicense: [unclosed\n---\n# x\n", "malformed"),
    ("---\nlicense: mit\n---\n# no privacy\n", "no privacy block"),
])
def test_malformed_cards_are_refused(bad, match):
    with pytest.raises(CardError, match=match):
        card_from_text(bad)


def test_unknown_method_and_bad_weights_hash_are_refused():
    with pytest.raises(CardError, match="method"):
        validate_card(card_from_text(with_privacy_line(text(), "method", "magic")))
    with pytest.raises(CardError, match="weights_sha256"):
        validate_card(card_from_text(text(weights_sha256="not-a-hash")))


def test_files_map_round_trips_and_is_checked():
    card = card_from_text(text()).with_files({"onnx/model.onnx": FileHash("cd" * 32, 1234)})
    again = validate_card(card_from_text(card.text))
    assert again.files == {"onnx/model.onnx": FileHash("cd" * 32, 1234)}
    assert again.privacy == card.privacy and again.pckh == card.pckh
    escaping = card_from_text(text()).with_files({"../evil.onnx": FileHash("cd" * 32, 1)})
    with pytest.raises(CardError, match="relative path"):
        validate_card(escaping)
    with pytest.raises(CardError, match="files"):
        card_from_text(card.text.replace("size: 1234", "size: big"))


def test_with_files_adds_the_zoo_tag_to_an_older_card():
    old = text().replace(f"- {ZOO_TAG}\n", "", 1)
    assert ZOO_TAG not in card_from_text(old).tags
    assert ZOO_TAG in card_from_text(old).with_files({}).tags


def test_load_card_reads_a_folder_or_a_file(tmp_path):
    (tmp_path / "README.md").write_text(text())
    assert load_card(tmp_path).privacy.epsilon == 2.0
    assert load_card(tmp_path / "README.md").weights_sha256 == SHA
    with pytest.raises(CardError, match="no model card"):
        load_card(tmp_path / "missing")
    (tmp_path / "README.md").write_text(with_privacy_line(text(), "clipping_norm", None))
    with pytest.raises(CardError, match="clipping_norm"):
        load_card(tmp_path)


def test_card_errors_are_value_errors():
    assert issubclass(CardError, ValueError)


def test_the_trainers_card_validates(tiny_checkpoint):
    card = load_card(tiny_checkpoint)
    assert card.privacy.method in ("non-private", "dp-sgd", "pdp-sgd")
    assert card.weights_sha256 and len(card.weights_sha256) == 64
    assert card.privacy.privacy_unit == "one annotated person instance"


def test_format_epsilon_never_shows_less_than_was_spent():
    from decimal import Decimal

    import numpy as np

    from dp_pose_zoo.card import format_epsilon

    assert format_epsilon(7.9300000001) == "7.931"  # rounding to nearest would show 7.930
    assert format_epsilon(8.0) == "8.000" and format_epsilon(float("inf")) == "inf"
    for eps in np.random.default_rng(0).uniform(1e-3, 50, 2000):
        text = format_epsilon(float(eps), 3)
        given = Decimal(repr(float(eps)))  # the decimal the float stands for
        assert Decimal(text) >= given and float(text) >= eps
        assert Decimal(text) - given <= Decimal(10) ** (given.adjusted() - 2)


def test_format_epsilon_rounds_up_the_decimal_that_was_given():
    from dp_pose_zoo.card import format_epsilon

    # The float 0.1 is 0.1000000000000000055... in binary: the user gave 0.1, so 0.1 is what is shown.
    assert format_epsilon(0.1) == "0.1000" and format_epsilon(0.2) == "0.2000"
    assert format_epsilon(0.1, 6) == "0.100000" and format_epsilon(1e-05) == "0.00001000"
    # A true value above the decimal is still never shown below it.
    assert format_epsilon(0.10000001) == "0.1001" and format_epsilon(0.1000000000000001) == "0.1001"


def test_an_audit_lower_bound_is_never_shown_above_what_was_measured():
    from decimal import Decimal

    import numpy as np

    from dp_pose_zoo.card import format_epsilon_lower_bound

    assert format_epsilon_lower_bound(2.5309) == "2.530"  # rounding to nearest would show 2.531
    assert format_epsilon_lower_bound(0.0) == "0.000" and format_epsilon_lower_bound(1.0) == "1.000"
    for bound in np.random.default_rng(0).uniform(0, 10, 2000):
        shown = Decimal(format_epsilon_lower_bound(float(bound)))
        assert shown <= Decimal(float(bound)) < shown + Decimal("0.001")
