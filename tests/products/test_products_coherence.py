"""Coherent members: Schaake shuffle / ECC keep marginals and restore the dependence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from probcast.products.coherence import (
    ecc,
    enforce_constraints,
    reorder,
    schaake_shuffle,
    shuffle_runs,
)
from probcast.verify.multivariate import multivariate_scores, vectors


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, (5, 7), elements=st.floats(-50, 50)),
    hnp.arrays(np.float64, (5, 7), elements=st.one_of(st.floats(-5, 5), st.just(np.nan))),
    st.integers(0, 1000),
)
def test_reorder_keeps_every_marginal(members, template, seed):
    out = reorder(members, template, np.random.default_rng(seed))
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(members, axis=1))


def test_reorder_follows_the_template_ranks():
    members = np.array([[3.0, 1.0, 2.0, 5.0]])
    template = np.array([[10.0, 40.0, 20.0, 30.0]])
    out = reorder(members, template, np.random.default_rng(0))
    np.testing.assert_array_equal(out, [[1.0, 5.0, 2.0, 3.0]])
    assert (np.argsort(ecc(members, template)) == np.argsort(template)).all()
    with pytest.raises(ValueError, match="equal shapes"):
        reorder(members, template[:, :3], np.random.default_rng(0))


def test_constraints_hold_member_wise():
    t = np.array([[270.0, 275.0], [280.0, 281.0]])
    td = np.array([[271.0, 260.0], [279.0, 290.0]])
    out, done = enforce_constraints({"t2m": t, "td2m": td})
    assert (out["td2m"] <= out["t2m"]).all()
    # row 0: re-paired (the marginal kept); row 1: 290 lies above every t2m member
    np.testing.assert_array_equal(out["td2m"], [[260.0, 271.0], [279.0, 281.0]])
    assert done["td2m"].repaired == 2 and done["td2m"].clipped == 1


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float64, (6, 9), elements=st.floats(250, 310)),
    hnp.arrays(np.float64, (6, 9), elements=st.floats(0, 20)),
    st.integers(0, 1000),
)
def test_constraints_keep_both_marginals_where_the_distributions_do_not_cross(t, gap, seed):
    """td2m's sorted members below t2m's: re-pairing alone removes every crossing."""
    rng = np.random.default_rng(seed)
    td = np.sort(t, axis=1) - np.sort(gap, axis=1)[:, ::-1]  # k-th smallest below t's
    td = np.take_along_axis(td, np.argsort(rng.random(td.shape), axis=1), axis=1)
    out, done = enforce_constraints({"t2m": t.copy(), "td2m": td.copy()})
    assert (out["td2m"] <= out["t2m"]).all()
    np.testing.assert_array_equal(out["t2m"], t)
    np.testing.assert_array_equal(np.sort(out["td2m"], 1), np.sort(td, 1))
    assert "td2m" not in done or done["td2m"].clipped == 0


def test_constraints_leave_a_variable_alone_where_the_other_is_missing():
    t = np.array([[np.nan, np.nan], [280.0, 281.0]])
    td = np.array([[271.0, 272.0], [279.0, 279.5]])
    tmin, tmax = np.array([[3.0, 1.0]]), np.array([[2.0, 4.0]])
    out, done = enforce_constraints({"t2m": t, "td2m": td, "tmin": tmin, "tmax": tmax})
    np.testing.assert_array_equal(out["td2m"], td)  # NaN t2m: no NaN members
    assert "td2m" not in done
    np.testing.assert_array_equal(out["tmin"], [[1.0, 3.0]])  # tmin <= tmax too


def test_gridded_members_obey_the_constraints():
    from probcast.products.build import build_members

    rng = np.random.default_rng(0)
    shape = (1, 4, 5)
    dims = ("forecast_period", "y", "x")
    ds = xr.Dataset(
        {
            "t2m_loc": (dims, np.full(shape, 290.0)),
            "t2m_scale": (dims, np.full(shape, 1.0)),
            "td2m_loc": (dims, 289.5 + rng.normal(0, 0.1, shape)),
            "td2m_scale": (dims, np.full(shape, 3.0)),
        },
        coords={"forecast_period": [np.timedelta64(6, "h")]},
    )
    for name in ds.data_vars:
        ds[name].attrs["distribution"] = "normal"
    out = build_members(ds, n_members=11).compute()
    assert (out["td2m"] <= out["t2m"]).all()
    assert (out["td2m"].isel(realization=0) < out["t2m"].isel(realization=0)).all()


def _weather(n_days: int, seed: int) -> pd.DataFrame:
    """Obs with a day anomaly shared by every station and lead (strong dependence)."""
    rng = np.random.default_rng(seed)
    inits = pd.date_range("2021-01-01", periods=n_days, freq="D", tz="UTC")
    stations, leads = ["A", "B", "C"], [6.0, 12.0, 18.0, 24.0]
    rows = pd.MultiIndex.from_product([inits, stations, leads]).to_frame(index=False)
    rows.columns = ["init_time", "station", "lead_time"]
    anomaly = rng.normal(0, 3, n_days)[rows["init_time"].dt.dayofyear.to_numpy() - 1]
    rows["obs_t2m"] = 280.0 + anomaly + rng.normal(0, 0.5, len(rows))
    return rows


def test_schaake_shuffle_beats_independent_members_on_energy_and_variogram():
    past, now = _weather(60, 1), _weather(60, 2)
    now["init_time"] = now["init_time"] + pd.Timedelta(days=60)
    now = now[now["init_time"] < "2021-03-12"].reset_index(drop=True)
    rng = np.random.default_rng(3)
    # Calibrated marginals (climatology), drawn independently per row.
    independent = {"t2m": 280.0 + rng.normal(0, np.hypot(3, 0.5), (len(now), 20))}
    coherent = schaake_shuffle(now, independent, past, seed=0)
    np.testing.assert_array_equal(np.sort(coherent["t2m"], 1), np.sort(independent["t2m"], 1))
    ind = multivariate_scores(now, independent).set_index("metric")["value"]
    coh = multivariate_scores(now, coherent).set_index("metric")["value"]
    for metric in ("energy_lead_time", "variogram_lead_time", "energy_station", "crps_lead_sum"):
        assert coh[metric] < ind[metric], metric


def test_vectors_keep_complete_ones_only():
    rows = _weather(2, 0)
    obs = rows["obs_t2m"].to_numpy().copy()
    obs[0] = np.nan
    o, f = vectors(rows, np.ones((len(rows), 3)), obs, "lead_time")
    assert o.shape == (5, 4) and f.shape == (5, 3, 4)
    with pytest.raises(ValueError, match="over"):
        vectors(rows, np.ones((len(rows), 3)), obs, "valid_time")


def test_similar_dates_are_chosen_by_forecast_distance():
    from probcast.products.coherence import template_dates

    past = _weather(30, 4)
    distance = pd.Series(np.arange(30.0)[::-1], pd.DatetimeIndex(past["init_time"].unique()))
    init = pd.Timestamp("2021-03-01", tz="UTC")
    dates = template_dates(past, init, 5, np.random.default_rng(0), distance)
    assert set(dates) == set(distance.index[-5:])  # the five smallest distances
    seasonal = template_dates(past, init, 5, np.random.default_rng(0))
    assert set(seasonal) == set(distance.index[-5:])  # also the latest days of year here


def test_vectors_over_many_stations_are_capped():
    from probcast.verify.multivariate import MAX_DIM

    n = MAX_DIM * 3
    rows = pd.DataFrame(
        {"station": [f"S{i:04d}" for i in range(n)], "init_time": 0, "lead_time": 6.0}
    )
    o, f = vectors(rows, np.ones((n, 2)), np.arange(float(n)), "station")
    assert o.shape == (1, MAX_DIM) and f.shape == (1, 2, MAX_DIM)


def test_vectors_over_runs_of_different_lengths_use_the_leads_most_runs_have():
    # 8 runs of 4 leads and 2 long runs of 12: vectors over all 12 leads would be 2 only.
    parts = [
        pd.DataFrame({"station": "A", "init_time": i, "lead_time": np.arange(1.0, n + 1)})
        for i, n in enumerate([4] * 8 + [12] * 2)
    ]
    rows = pd.concat(parts, ignore_index=True)
    obs = np.arange(float(len(rows)))
    o, f = vectors(rows, np.ones((len(rows), 3)), obs, "lead_time")
    assert o.shape == (10, 4) and f.shape == (10, 3, 4)  # 40 values scored, not 24
    np.testing.assert_array_equal(o[0], obs[:4])


def test_pit_correlation_measures_the_dependence_left_by_the_forecast():
    from probcast.verify.multivariate import pit_correlation

    rng = np.random.default_rng(0)
    n, m, d = 400, 30, 5
    members = rng.normal(size=(n, m, d))
    independent = rng.normal(size=(n, d))
    shared = rng.normal(size=(n, 1)) * 0.9 + rng.normal(size=(n, d)) * np.sqrt(1 - 0.81)
    assert abs(pit_correlation(independent, members)) < 0.05
    assert pit_correlation(shared, members) > 0.7
    # the members' order does not matter
    shuffled = np.take_along_axis(members, np.argsort(rng.random(members.shape), axis=1), 1)
    assert pit_correlation(shared, shuffled) == pytest.approx(pit_correlation(shared, members))


def test_template_pit_is_the_rank_of_each_observation_among_the_model_members():
    from probcast.predict.copula import with_template_pit

    past = _weather(10, 5)
    past.loc[3, "obs_t2m"] = np.nan

    def sample(rows: pd.DataFrame, members: int) -> dict[str, np.ndarray]:
        # members centred 1 K below each observation: every PIT in the upper part
        centre = rows["obs_t2m"].fillna(280.0).to_numpy()[:, None] - 1.0
        return {"t2m": centre + np.linspace(-0.5, 0.5, members)}

    out = with_template_pit(past, ["t2m", "tp"], sample, seed=0)
    assert "pit_tp" not in out and np.isnan(out.loc[3, "pit_t2m"])
    pit = out["pit_t2m"].drop(index=3)
    assert ((pit > 0.95) & (pit <= 1.0)).all()
    assert with_template_pit(past.drop(columns="obs_t2m"), ["t2m"], sample).equals(
        past.drop(columns="obs_t2m")
    )


def test_schaake_shuffle_ranks_the_pit_before_the_errors():
    past, now = _weather(60, 1), _weather(60, 2)
    now["init_time"] = now["init_time"] + pd.Timedelta(days=60)
    now = now[now["init_time"] == now["init_time"].min()].reset_index(drop=True)
    past["fc_t2m"] = 280.0
    members = {"t2m": np.tile(np.arange(20.0), (len(now), 1))}
    by_error = schaake_shuffle(now, members, past, seed=0)["t2m"]
    by_pit = schaake_shuffle(now, members, past.assign(pit_t2m=-past["obs_t2m"]), seed=0)["t2m"]
    # the PIT here is the reversed error: every member's rank is mirrored
    np.testing.assert_array_equal(by_pit, 19.0 - by_error)


def test_the_pit_is_needed_only_on_the_dates_the_shuffle_uses():
    past, now = _weather(60, 1), _weather(60, 2)
    now["init_time"] = now["init_time"] + pd.Timedelta(days=60)
    now = now[now["init_time"] < "2021-03-05"].reset_index(drop=True)  # 3 runs
    rng = np.random.default_rng(4)
    past["fc_t2m"] = past["obs_t2m"] + rng.normal(0, 1, len(past))  # analog choice by forecast
    now["fc_t2m"] = now["obs_t2m"]
    past["pit_t2m"] = rng.random(len(past))
    members = {"t2m": rng.normal(280, 3, (len(now), 8))}
    runs = shuffle_runs(now, past, ["t2m"], 8, seed=5)
    dates = pd.DatetimeIndex([], tz="UTC").append([run.dates for run in runs]).unique()
    assert 8 <= len(dates) <= 3 * 8 < past["init_time"].nunique()
    used = past["init_time"].isin(dates)
    only = past.assign(pit_t2m=past["pit_t2m"].where(used))  # NaN on every other date
    full = schaake_shuffle(now, members, past, seed=5)["t2m"]
    np.testing.assert_array_equal(schaake_shuffle(now, members, only, seed=5)["t2m"], full)
    # the runs given (chosen once, replayed alike): the same shuffle
    for _ in range(2):
        given = schaake_shuffle(now, members, only, seed=5, runs=runs)["t2m"]
        np.testing.assert_array_equal(given, full)
    with pytest.raises(ValueError, match="member count"):
        schaake_shuffle(now, {"t2m": members["t2m"][:, :4]}, past, runs=runs)


def test_dates_are_never_the_run_s_own_or_later_ones():
    from probcast.products.coherence import template_dates

    past = _weather(10, 4)
    first = past["init_time"].min()
    assert not len(template_dates(past, first, 5, np.random.default_rng(0)))
    now = past[past["init_time"] == first].reset_index(drop=True)
    members = {"t2m": np.tile(np.arange(5.0), (len(now), 1))}
    out = schaake_shuffle(now, members, past, seed=0)["t2m"]  # no earlier date: as drawn
    np.testing.assert_array_equal(out, members["t2m"])


def test_few_dates_are_each_used_and_members_sharing_one_stay_apart():
    from probcast.products.coherence import template_dates

    past = _weather(6, 4)
    init = pd.Timestamp("2021-03-01", tz="UTC")
    dates = template_dates(past, init, 15, np.random.default_rng(0))
    assert len(dates) == 15 and set(dates) == set(past["init_time"].unique())
    now = _weather(1, 5)
    now["init_time"] = init
    rng = np.random.default_rng(1)
    members = {"t2m": np.sort(rng.normal(280, 3, (len(now), 15)), axis=1)}
    out = schaake_shuffle(now, members, past, seed=0)["t2m"]
    ranks = np.argsort(np.argsort(out, axis=1), axis=1)
    runs = shuffle_runs(now, past, ["t2m"], 15, seed=0)
    groups = np.unique(runs[0].dates.asi8, return_inverse=True)[1]
    for g in np.unique(groups):
        cols = np.flatnonzero(groups == g)
        if len(cols) > 1:  # one date twice: the same order of the two in every row
            order = np.argsort(ranks[:, cols], axis=1)
            assert (order == order[0]).all()


def test_dates_observing_under_half_of_the_run_come_last():
    from probcast.products.coherence import template_dates

    past = _weather(10, 4)
    dates = pd.DatetimeIndex(past["init_time"].unique())
    init = pd.Timestamp("2021-03-01", tz="UTC")
    distance = pd.Series(np.arange(10.0), dates)  # the first dates the most similar
    coverage = pd.Series(np.where(np.arange(10) < 3, 0.2, 1.0), dates)
    got = template_dates(past, init, 4, np.random.default_rng(0), distance, coverage)
    assert set(got) == set(dates[3:7])


def test_forecasts_are_scored_as_scenarios_on_the_cases_they_share():
    from probcast.verify.multivariate import tidy_multivariate

    rows = _weather(5, 0)
    rng = np.random.default_rng(0)
    full = rows.copy()
    for j in range(6):
        full[f"t2m_m{j:03d}"] = full["obs_t2m"] + rng.normal(0, 1, len(full))
    short = full[full["lead_time"] <= 12.0].reset_index(drop=True)
    got = tidy_multivariate({"full": full, "short": short}, ["t2m"], max_vectors=1000)
    wide = got.pivot_table(index="metric", columns="method", values="value")
    # both on the 2 leads the short forecast has: 15 vectors of 2 leads each
    assert wide.loc["dim_lead_time"].tolist() == [2.0, 2.0]
    assert wide.loc["vectors_lead_time"].tolist() == [15.0, 15.0]
    assert wide.loc["energy_lead_time", "full"] == pytest.approx(
        wide.loc["energy_lead_time", "short"]
    )
    alone = tidy_multivariate({"full": full}, ["t2m"], max_vectors=1000)
    assert alone.set_index("metric").loc["dim_lead_time", "value"] == 4.0
