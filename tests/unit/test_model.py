"""Unit tests for the contract of riskstream.model.LatePaymentModel."""

from __future__ import annotations

import pickle
import random

import pytest

from riskstream.model import (
    ANOMALY_GRACE_ORDERS,
    FEATURES,
    BinnedRocAuc,
    LatePaymentModel,
    OrderAnomalyDetector,
)
from riskstream.state import CustomerState

PROBES = [
    [0.0] * len(FEATURES),
    [1.0] * len(FEATURES),
    [0.5, 0.9, 2.0, 4.0, 1.0, 0.0, 12.0, 41.5, 30.0, 6.0],
    [3.0, 1.4, 0.0, 1.0, 0.0, 2.0, 0.0, 10.0, 14.0, 1.0],
]


def train(model, outcomes=60, seed=5):
    """Teach ``model`` seeded outcomes: late when ``avg_days_to_pay`` exceeds 2.5."""
    rng = random.Random(seed)
    for _ in range(outcomes):
        features = [round(rng.uniform(0, 5), 4) for _ in FEATURES]
        late = features[7] > 2.5
        model.learn(features, late, rng.random())


@pytest.mark.parametrize(
    "features",
    [pytest.param(probe, id=f"probe-{number}") for number, probe in enumerate(PROBES)],
)
def test_untrained_model_predicts_half(features):
    assert LatePaymentModel().predict(features) == 0.5


def test_same_outcomes_same_predictions():
    first, second = LatePaymentModel(), LatePaymentModel()

    train(first)
    train(second)

    predictions = [first.predict(probe) for probe in PROBES]
    assert predictions == [second.predict(probe) for probe in PROBES]
    assert any(value != 0.5 for value in predictions)
    assert first.describe() == second.describe()


def test_learn_counts_updates():
    model = LatePaymentModel()

    train(model, outcomes=7)

    assert model.updates == 7


def test_unscored_outcome_skips_metrics():
    unscored, scored = LatePaymentModel(), LatePaymentModel()

    unscored.learn([1.0] * len(FEATURES), True, -1.0)
    scored.learn([1.0] * len(FEATURES), True, 0.2)

    assert unscored.updates == 1
    assert unscored.describe()["log_loss"] is None
    assert unscored.describe()["roc_auc"] is None
    assert scored.describe()["log_loss"] > 0.0
    assert scored.describe()["scored_outcomes"] == 1
    # Only late outcomes so far, so the ranking cannot be judged yet.
    assert scored.describe()["roc_auc"] is None


def test_checkpoint_keeps_predictions():
    model = LatePaymentModel()
    train(model)

    restored = LatePaymentModel.from_bytes(model.to_bytes())

    assert [restored.predict(p) for p in PROBES] == [model.predict(p) for p in PROBES]
    assert restored.updates == model.updates
    assert restored.describe() == model.describe()


def test_checkpoint_keeps_learning_state():
    model = LatePaymentModel()
    train(model, seed=5)
    restored = LatePaymentModel.from_bytes(model.to_bytes())

    train(model, seed=6)
    train(restored, seed=6)

    assert [restored.predict(p) for p in PROBES] == [model.predict(p) for p in PROBES]


def test_checkpoint_rejects_other_type():
    raw = pickle.dumps({"updates": 3})

    with pytest.raises(TypeError, match="dict"):
        LatePaymentModel.from_bytes(raw)


def test_auc_ranks_late_above_paid():
    auc = BinnedRocAuc()
    for late, predicted in [(True, 0.8), (True, 0.6), (False, 0.2), (False, 0.7)]:
        auc.update(late, predicted)

    assert auc.get() == 0.75


def test_auc_counts_tie_half():
    auc = BinnedRocAuc()
    auc.update(True, 0.5)
    auc.update(False, 0.501)

    assert auc.get() == 0.5


def test_auc_zero_without_both_outcomes():
    auc = BinnedRocAuc()
    auc.update(True, 0.9)

    assert auc.get() == 0.0


def test_version_1_checkpoint_gets_new_auc():
    model = LatePaymentModel()
    train(model)
    model.roc_auc = {"river": "ROCAUC"}

    restored = LatePaymentModel.from_bytes(pickle.dumps(model))

    assert isinstance(restored.roc_auc, BinnedRocAuc)
    assert restored.updates == model.updates


def test_version_2_checkpoint_gets_detectors():
    model = LatePaymentModel()
    train(model)
    for name in ("order_detector", "error_drift", "drifts"):
        delattr(model, name)

    restored = LatePaymentModel.from_bytes(pickle.dumps(model))

    assert restored.order_detector.orders == 0
    assert restored.drifts == 0
    assert restored.describe()["error_drifts"] == 0


def test_detector_silent_in_grace():
    detector = OrderAnomalyDetector()

    scores = [detector.score_and_learn(0.1, 0.0) for _ in range(ANOMALY_GRACE_ORDERS)]

    assert scores == [None] * ANOMALY_GRACE_ORDERS
    assert detector.orders == ANOMALY_GRACE_ORDERS


def test_detector_flags_far_tail():
    rng = random.Random(3)
    detector = OrderAnomalyDetector()
    for _ in range(200):
        detector.score_and_learn(rng.gauss(0, 0.5), rng.gauss(0, 0.3))

    typical = detector.score_and_learn(0.05, 0.0)
    large_order = detector.score_and_learn(3.0, 0.0)
    long_gap = detector.score_and_learn(0.0, 2.0)
    no_gap = detector.score_and_learn(0.0, None)

    assert typical < 0.5
    assert large_order > 0.999
    assert long_gap > 0.999
    assert no_gap < 0.5


def test_error_drift_detected():
    model = LatePaymentModel()
    features = [0.0] * len(FEATURES)
    for number in range(600):
        # Good predictions first, then the same predictions turn wrong.
        late = number % 2 == 0
        predicted = 0.9 if late == (number < 300) else 0.1
        model.learn(features, late, predicted)

    described = model.describe()

    assert model.drifts >= 1
    assert described["error_drifts"] == model.drifts
    assert described["mean_error"] > 0.5


def test_checkpoint_keeps_detectors():
    model = LatePaymentModel()
    for _ in range(60):
        model.order_detector.score_and_learn(0.2, 0.1)

    restored = LatePaymentModel.from_bytes(model.to_bytes())

    assert restored.order_detector.orders == 60
    assert restored.order_detector.score_and_learn(2.5, None) == (
        model.order_detector.score_and_learn(2.5, None)
    )


def test_detector_learning_marks_model_changed(engine, make_event, at):
    model = LatePaymentModel()
    state = CustomerState("c1")
    orders = [
        make_event("order.placed", at(day), order_id=f"o{day}")
        for day in range(0, 50, 5)
    ]

    outcomes = [engine.step(state, order, model) for order in orders]

    assert model.updates == 0
    assert model.learned == model.order_detector.orders == len(orders) - 3
    assert [outcome.model_changed for outcome in outcomes[:3]] == [False] * 3
    assert all(outcome.model_changed for outcome in outcomes[3:])
