"""EMOS compiles its loss once per family and padded shape, and padding changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from probcast import dists
from probcast.baselines import emos, emos_fit, emos_kernels, fit_emos

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _reference_fit_groups(  # type: ignore[no-untyped-def]
    family, x, center, y, groups, prior, spread, shrinkage, maxiter=500, **ignored
) -> np.ndarray:
    """The straightforward fit: the whole loss in float64, jitted per call, unpadded.

    It always starts from ``prior`` (a ``start`` is ignored): the reference optimum; it
    pads nothing (``pad_rows`` and ``slots`` are ignored too).
    """
    dist = dists.get(family)
    n_groups = prior.shape[0]
    with jax.enable_x64(True):
        data = [jnp.asarray(np.asarray(a, np.float64)) for a in (x, center, y)]
        g = jnp.asarray(groups)
        counts = jnp.asarray(np.maximum(np.bincount(groups, minlength=n_groups), 1.0))

        def loss(theta):  # type: ignore[no-untyped-def]
            raw = jnp.einsum("rf,rpf->rp", data[0], theta[g])
            crps = dist.crps(dist.constrain(raw, data[1], jnp.float64(spread)), data[2])
            per_group = jax.ops.segment_sum(crps / spread, g, num_segments=n_groups) / counts
            return jnp.sum(per_group) + shrinkage * jnp.sum((theta - prior) ** 2)

        vg = jax.jit(jax.value_and_grad(loss))

        def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
            val, grad = vg(jnp.asarray(flat.reshape(prior.shape)))
            return float(val), np.asarray(grad).ravel()

        res = minimize(fun, prior.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                       options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})  # fmt: skip
    return np.asarray(res.x).reshape(prior.shape)


def _table(n: int, seed: int, var: str = "t2m") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    fc = rng.normal(280.0, 5.0, n) if var == "t2m" else np.maximum(rng.gamma(0.6, 3.0, n) - 0.5, 0)
    obs = 1.0 + 0.9 * fc + rng.logistic(0.0, 0.8, n)
    return pd.DataFrame(
        {
            "station": rng.choice(["A", "B", "C"], n),
            "lead_time": rng.choice([6.0, 12.0, 24.0, 36.0], n),
            f"fc_{var}": fc,
            f"obs_{var}": np.maximum(obs, 0.0) if var == "tp" else obs,
        }
    )


def _coefs(model: emos.EmosModel) -> np.ndarray:
    local = [c for st in sorted(model.station_coefs) for c in model.station_coefs[st] if c]
    return np.concatenate([np.ravel(model.global_coefs), np.ravel(local)])


@pytest.mark.parametrize(("var", "family"), [("t2m", "normal"), ("tp", "censored_logistic")])
def test_coefficients_equal_the_reference_fit(
    var: str, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = _table(900, seed=1, var=var)
    kwargs = {"family": family, "by_station": True, "min_rows": 60, "lead_bins": 2}
    new = fit_emos(train, var, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(emos, "fit_groups", _reference_fit_groups)
    ref = fit_emos(train, var, **kwargs)  # type: ignore[arg-type]
    assert set(new.station_coefs) == set(ref.station_coefs) == {"A", "B", "C"}
    np.testing.assert_allclose(_coefs(new), _coefs(ref), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("var", "family"), [("t2m", "normal"), ("tp", "censored_logistic")])
def test_a_warm_start_reaches_the_same_fit(var: str, family: str) -> None:
    """Cross-validation folds start from the fit on all rows: same optimum as from the prior."""
    train = _table(900, seed=1, var=var)
    fold = train.iloc[: int(len(train) * 0.8)]
    kwargs = {"family": family, "by_station": True, "min_rows": 60, "lead_bins": 2}
    every = fit_emos(train, var, **kwargs)  # type: ignore[arg-type]
    cold = fit_emos(fold, var, **kwargs)  # type: ignore[arg-type]
    warm = fit_emos(fold, var, start=every, **kwargs)  # type: ignore[arg-type]
    assert set(warm.station_coefs) == set(cold.station_coefs)
    np.testing.assert_allclose(_coefs(warm), _coefs(cold), rtol=1e-4, atol=1e-5)
    assert not np.allclose(_coefs(cold), _coefs(every), rtol=1e-3)  # a start, not the answer
    other = fit_emos(fold, var, **{**kwargs, "lead_bins": 1}, start=every)  # type: ignore[arg-type]
    assert emos._compatible(every, other) is None  # other bins: the start is not used


@pytest.fixture
def compiles() -> Iterator[list[str]]:
    """Names of the XLA backend compilations while the test runs."""
    seen: list[str] = []

    def listen(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == COMPILE_EVENT:
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listen)


def test_second_fit_of_same_family_and_bucket_does_not_compile(compiles: list[str]) -> None:
    first, second = _table(700, seed=2), _table(740, seed=3)  # both pad to 768 rows
    assert emos_fit.bucket(700) == emos_fit.bucket(740) == 768
    fit_emos(first, "t2m", family="normal", by_station=True, min_rows=50, lead_bins=2)
    size = emos_kernels.group_terms._cache_size()  # type: ignore[attr-defined]
    assert size >= 1
    compiles.clear()
    model = fit_emos(second, "t2m", family="normal", by_station=True, min_rows=50, lead_bins=2)
    assert model.station_coefs  # the local (station x bin) fit ran too
    assert compiles == []  # no XLA compilation at all in the second fit
    assert emos_kernels.group_terms._cache_size() == size  # type: ignore[attr-defined]


def test_padding_does_not_change_the_fit() -> None:
    rng = np.random.default_rng(4)
    n, n_groups = 333, 5
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    center = rng.gamma(1.0, 2.0, n)
    y = np.maximum(center + rng.logistic(0.0, 1.0, n) - 0.5, 0.0)
    groups = rng.integers(0, n_groups, n)
    prior = np.zeros((n_groups, 2, 3))
    args = ("censored_logistic", x, center, y, groups, prior, 1.3, 1e-3)
    exact = emos_fit.fit_groups(*args, pad_rows=n)
    assert emos_fit.bucket(n) == 384
    for rows in (384, 4 * n + 1):
        # the kernel is elementwise over rows: padding cannot touch a real row's value
        np.testing.assert_array_equal(emos_fit.fit_groups(*args, pad_rows=rows), exact)
    with pytest.raises(ValueError, match="padding"):
        emos_fit.fit_groups(*args, pad_rows=n - 1)


def test_subsets_padded_like_the_whole_table_share_its_kernels(compiles: list[str]) -> None:
    """The blend's fold fits, padded like its fit on all rows, compile nothing more."""
    from probcast.train.blend import pad_for

    every = _table(1500, seed=5)
    fold = every.iloc[: int(len(every) * 0.75)]
    assert emos_fit.bucket(len(fold)) != emos_fit.bucket(len(every))  # sizes of their own
    pad = pad_for(every)
    kwargs = {"family": "normal", "by_station": True, "min_rows": 50, "lead_bins": 2}
    fit_emos(every, "t2m", pad_rows=pad, **kwargs)  # type: ignore[arg-type]
    compiles.clear()
    padded = fit_emos(fold, "t2m", pad_rows=pad, start=None, **kwargs)  # type: ignore[arg-type]
    assert compiles == []
    alone = fit_emos(fold, "t2m", **kwargs)  # type: ignore[arg-type]
    np.testing.assert_array_equal(_coefs(padded), _coefs(alone))  # the same fit
    assert pad_for(_table(300_000, seed=6)) is None  # large tables: each fit its own size


def test_compacted_groups_reuse_the_first_stage_kernel(
    compiles: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the first warm-start stage's blocks spill past its rows, the slow groups'
    compacted runs are padded to that stage's kernel rows: one kernel, not two."""
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(6), 2022)  # a stage of 2048 rows keeps 337 rows a group
    n = len(groups)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    center = rng.normal(2.0, 3.0, n)
    y = center + 0.5 * x[:, 1] + rng.logistic(0.0, 1.0, n)
    prior = np.zeros((6, 2, 3))
    # 6 groups x 22 blocks of 16 rows = 2112 > 2048: the first stage spills to 2560 rows
    assert emos_fit.kernel_rows(np.full(6, 337), emos_fit.STAGE_ROWS[0]) == 2560
    solves: list[int] = []
    solve = emos_fit._solve

    def record(*args, **kwargs):  # type: ignore[no-untyped-def]
        solves.append(kwargs["tail"])
        return solve(*args, **kwargs)

    monkeypatch.setattr(emos_fit, "_solve", record)
    args = ("normal", x, center, y, groups, prior, 1.0, 1e-4)
    theta = emos_fit.fit_groups(*args)
    assert solves == [emos_fit.COMPACT_ROWS, 2560, 2560]  # stage 1, stage 2, all rows
    # force a compaction: every group but the last is done after its first decrement
    runs: list[tuple[int, bool]] = []
    newton = emos_fit._newton

    def runs_of(loss, data, prior, maxiter, size, **kwargs):  # type: ignore[no-untyped-def]
        runs.append((size, kwargs.get("slots") is not None))
        return newton(loss, data, prior, maxiter, size, **kwargs)

    monkeypatch.setattr(emos_fit, "_newton", runs_of)
    loss = emos_fit._Loss("normal", 1.0, 1e-4)
    data = emos_fit.Rows(x, center, y, groups)
    tol = np.r_[np.full(5, np.inf), 0.0]
    compiles.clear()
    again = solve(
        loss, data, prior, 6, emos_fit.bucket(n), start=theta, tol=tol, tail=2560, slots=6
    )
    assert runs == [(emos_fit.bucket(n), False), (2560, True)]  # compacted, on the stage's
    assert compiles == []  # kernel, compiled by the first stage
    assert np.all(np.isfinite(again))


def test_global_and_local_fits_share_the_all_rows_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local EMOS's global fit runs on the local fit's group slots: one kernel on all rows."""
    shapes: list[tuple[tuple[int, ...], int]] = []
    terms = emos_kernels.group_terms

    def record(theta, xt, *args, **kwargs):  # type: ignore[no-untyped-def]
        shapes.append((theta.shape, xt.shape[1]))
        return terms(theta, xt, *args, **kwargs)

    train = _table(1500, seed=8)
    kwargs = {"family": "normal", "min_rows": 50, "lead_bins": 2}
    alone = fit_emos(train, "t2m", by_station=False, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(emos_kernels, "group_terms", record)
    local = fit_emos(train, "t2m", by_station=True, **kwargs)  # type: ignore[arg-type]
    assert len(local.station_coefs) == 3  # 3 stations x 2 bins: 6 groups, 6 slots
    rows = emos_fit.bucket(len(train))
    n_feat = 1 + len(local.features)
    full = [theta for theta, n in shapes if n == rows]
    assert len(full) > 2 and set(full) == {(6, 2, n_feat)}  # both fits, one kernel
    # the global coefficients do not depend on the slots they were fitted on
    np.testing.assert_allclose(local.global_coefs, alone.global_coefs, rtol=1e-9, atol=1e-12)
    x, prior = np.ones((8, 1)), np.zeros((2, 2, 1))
    with pytest.raises(ValueError, match="slots"):
        emos_fit.fit_groups("normal", x, x[:, 0], x[:, 0], np.arange(8) % 2, prior, 1.0, 0.1,
                            slots=1)  # fmt: skip
