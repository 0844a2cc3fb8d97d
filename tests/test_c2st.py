"""Classifier two-sample tests: agreement with sbi, null behaviour, p-values, the torch and latent paths."""

import numpy as np
import pytest

from numl_core.uncertainty.c2st import binomial_pvalue, c2st, c2st_torch, latent_c2st


def _sbi_samples():
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(400, 3))
    y = rng.normal(size=(400, 3))
    y[:, 0] += 0.5
    return x, y, rng.normal(size=(400, 3))


# Pinned from sbi 0.27.0 (sbi.utils.metrics.c2st, defaults) with scikit-learn 1.9.1 on the samples above,
# computed once in a separate environment (sbi is not a dependency):
#   python -c "... m.c2st(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, ...), classifier=clf)"
# giving shifted: rf 0.5599999999999999, mlp 0.5925; same: rf 0.465, mlp 0.465.
SBI_C2ST = {
    ("shifted", "rf"): 0.56,
    ("shifted", "mlp"): 0.5925,
    ("same", "rf"): 0.465,
    ("same", "mlp"): 0.465,
}


@pytest.mark.parametrize(("case", "classifier"), list(SBI_C2ST))
def test_agrees_with_sbi(case, classifier):
    x, shifted, same = _sbi_samples()
    result = c2st(x, shifted if case == "shifted" else same, classifier=classifier)
    assert result.accuracy == pytest.approx(SBI_C2ST[case, classifier], abs=1e-9)
    assert len(result.fold_accuracies) == 5
    assert result.accuracy == pytest.approx(result.fold_accuracies.mean())
    assert result.classifier == classifier and result.n == 800


def test_forest_threads_do_not_change_the_accuracies():
    x, shifted, _ = _sbi_samples()
    one = c2st(x, shifted)
    two = c2st(x, shifted, n_jobs=2)
    np.testing.assert_array_equal(one.fold_accuracies, two.fold_accuracies)
    assert two.accuracy == pytest.approx(SBI_C2ST["shifted", "rf"], abs=1e-9)


def test_same_distribution_is_near_one_half_and_separated_is_near_one():
    rng = np.random.default_rng(0)
    same = c2st(rng.normal(size=(600, 4)), rng.normal(size=(600, 4)))
    # under the null the accuracy over 1200 predictions has sd 0.5 / sqrt(1200) = 0.014; 4 sd
    assert abs(same.accuracy - 0.5) < 0.058 and same.pvalue > 1e-3
    far = c2st(rng.normal(size=(500, 4)), rng.normal(4.0, 1.0, size=(500, 4)))
    assert far.accuracy > 0.97 and far.pvalue < 1e-100


def test_permutation_pvalue_bounds():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(100, 2)), rng.normal(2.0, 1.0, size=(100, 2))
    kwargs = {"pvalue_method": "permutation", "n_permutations": 4, "n_folds": 2}
    separated = c2st(x, y, **kwargs)
    assert separated.pvalue == pytest.approx(0.2)  # the smallest possible: 1 / (1 + 4)
    null = c2st(x, rng.normal(size=(100, 2)), **kwargs)
    assert null.pvalue > 0.2


def test_binomial_pvalue_known_values():
    # P(Bin(10, 1/2) >= 8) = 56 / 1024
    assert binomial_pvalue(0.8, 10) == pytest.approx(56 / 1024)
    assert binomial_pvalue(0.0, 10) == pytest.approx(1.0)


def test_bad_inputs_raise():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match="same D"):
        c2st(x, np.zeros((10, 3)))
    bad = np.ones((10, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="second sample holds NaN"):
        c2st(x, bad)
    with pytest.raises(ValueError, match="classifier"):
        c2st(x, x, classifier="svm")
    with pytest.raises(ValueError, match="pvalue_method"):
        c2st(x, x, pvalue_method="bootstrap")


def test_torch_c2st_separates_and_does_not_invent_differences():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2))
    kwargs = {"epochs": 8, "batch_size": 128, "lr": 1e-2, "device": "cpu", "n_folds": 2}
    far = c2st_torch(x, rng.normal(3.0, 1.0, size=(300, 2)), **kwargs)
    assert far.accuracy > 0.9 and far.classifier == "torch-mlp" and len(far.fold_accuracies) == 2
    same = c2st_torch(x, rng.normal(size=(300, 2)), **kwargs)
    # sd of the null accuracy over 600 predictions: 0.020; 4 sd
    assert abs(same.accuracy - 0.5) < 0.08


def test_latent_c2st_sees_a_wrong_flow():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(600, 3))
    good = latent_c2st(lambda a: a, z)
    bad = latent_c2st(lambda a: 2.0 * a, z)
    assert abs(good.accuracy - 0.5) < 0.06 and bad.accuracy > 0.6
