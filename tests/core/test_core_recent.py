"""Recent forecast errors known at initialisation time (probcast.recent)."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast import recent
from probcast.features import FeatureSpec


def _table() -> pd.DataFrame:
    """Station A, runs every 6 h, leads 0 and 6 h; obs - fc is the valid hour / 6."""
    inits = pd.date_range("2024-01-01", periods=6, freq="6h", tz="UTC")
    rows = []
    for t in inits:
        for lead in (0, 6):
            valid = t + pd.Timedelta(hours=lead)
            err = valid.hour / 6 + (100 if lead == 6 else 0)  # lead 6 error differs
            rows.append(("A", t, lead, valid, 10.0, 10.0 + err))
    return pd.DataFrame(
        rows, columns=["station", "init_time", "lead_time", "valid_time", "fc_t2m", "obs_t2m"]
    )


def test_hand_computed_values():
    table = _table()
    err = recent.recent_errors(table, "t2m", hours=12)
    at = dict(zip(zip(table["init_time"], table["lead_time"], strict=True), err, strict=True))

    def t(hour: int) -> pd.Timestamp:
        return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=hour)

    # A lead-0 row's observation (valid at init) is its own target: the first run's lead-0
    # row has no earlier one.
    assert np.isnan(at[(t(0), 0)])
    # At 06 UTC: valid 00 (0) and 06 (1) within 12 h; the 00 run's lead-6 row is valid at
    # 06 too (error 101), but each valid time counts once, at its shortest lead.
    assert at[(t(6), 6)] == 0.5
    # At 12 UTC, lead 0: the last observation before 12 is 06, window (-6, 06]: 00 (0), 06 (1).
    assert at[(t(12), 0)] == 0.5
    # ... and lead 6 (valid 18) may use 12's: the window (00, 12] holds 06 (1) and 12 (2).
    assert at[(t(12), 6)] == 1.5
    # Next day 00 UTC: (12, 24] holds 18 (3) and 00 (0).
    assert at[(t(24), 6)] == 1.5


def test_no_observation_after_init_is_used():
    table = _table()
    base = recent.recent_errors(table, "t2m", hours=24)
    later = table["valid_time"] > table["init_time"].min()
    changed = table.copy()
    future = changed["valid_time"] > pd.Timestamp("2024-01-01 12:00", tz="UTC")
    changed.loc[future, "obs_t2m"] += 1000.0  # observations after 12 UTC
    after = recent.recent_errors(changed, "t2m", hours=24)
    known = (table["init_time"] <= pd.Timestamp("2024-01-01 12:00", tz="UTC")).to_numpy()
    np.testing.assert_array_equal(base[known], after[known])
    assert later.any()


def test_a_lead_0_row_never_sees_its_own_observation():
    """Daily runs, leads 0 and 24 h: the other run's lead-24 row is valid at init too."""
    rng = np.random.default_rng(0)
    inits = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    table = pd.DataFrame(
        [("A", t, lead) for t in inits for lead in (0.0, 24.0)],
        columns=["station", "init_time", "lead_time"],
    )
    table["fc_t2m"] = 0.0
    table["obs_t2m"] = rng.normal(size=len(table))
    err = recent.recent_errors(table, "t2m", hours=24)
    lead0 = (table["lead_time"] == 0).to_numpy()
    own = table["obs_t2m"].to_numpy()
    ok = lead0 & np.isfinite(err)
    assert ok.sum() > 50 and abs(np.corrcoef(err[ok], own[ok])[0, 1]) < 0.3
    valid = recent.valid_times(table)
    for i in np.flatnonzero(lead0)[1:10]:  # no observation valid at the row's time is used
        same = (valid == valid[i]).to_numpy()
        moved = table.assign(obs_t2m=table["obs_t2m"].where(~same, 1e6))
        assert recent.recent_errors(moved, "t2m", hours=24)[i] == err[i]


def test_stale_and_absent_observations_give_nan():
    table = _table()
    late = table["valid_time"] >= pd.Timestamp("2024-01-01 06:00", tz="UTC")
    table.loc[late, "obs_t2m"] = np.nan  # nothing observed after 00 UTC
    err = recent.recent_errors(table, "t2m", hours=6)
    stale = table["init_time"] >= pd.Timestamp("2024-01-01 06:01", tz="UTC")
    assert np.isnan(err[stale.to_numpy()]).all()  # last observation more than 6 h old
    first = (table["lead_time"] == 0) & (table["init_time"] == table["init_time"].min())
    assert (err[(~stale & ~first).to_numpy()] == 0.0).all()
    assert np.isnan(err[first.to_numpy()]).all()  # its only observation is its own target
    no_obs = table.drop(columns=["obs_t2m"])
    assert np.isnan(recent.recent_errors(no_obs, "t2m", hours=24)).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), hours=st.sampled_from([6.0, 24.0, 72.0]))
def test_row_order_does_not_matter(seed, hours):
    table = _table()
    shuffled = table.sample(frac=1.0, random_state=seed)
    a = recent.recent_errors(table, "t2m", hours)
    b = pd.Series(recent.recent_errors(shuffled, "t2m", hours), index=shuffled.index)
    np.testing.assert_array_equal(a, b.sort_index().to_numpy())


def test_feature_spec_adds_the_column_with_an_indicator_and_derives_it():
    table = _table()
    spec = FeatureSpec.fit(table, "t2m", {"recent_error_hours": 12.0})
    assert "err_t2m" in spec.columns and "err_t2m" in spec.indicators
    operational = table.drop(columns=["obs_t2m"])  # a cycle's input: no observations
    batch = spec.transform(operational)
    j = spec.feature_names().index("missing_err_t2m")
    assert (batch.x[:, j] == 1.0).all()  # imputed, flagged
    off = FeatureSpec.fit(table, "t2m", {"recent_error_hours": 0.0})
    assert "err_t2m" not in off.columns
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_mask_hides_the_same_rows_for_every_target():
    table = _table()
    table["err_t2m"] = 1.0
    table["err_td2m"] = 2.0
    out = recent.mask(table, ["t2m", "td2m"], fraction=0.5, seed=1)
    assert out["err_t2m"].isna().equals(out["err_td2m"].isna())
    assert 0 < out["err_t2m"].isna().sum() < len(table)
    assert table["err_t2m"].notna().all()  # the input is not changed


def test_valid_time_may_be_left_out():
    table = _table()
    np.testing.assert_array_equal(
        recent.recent_errors(table, "t2m", 12),
        recent.recent_errors(table.drop(columns="valid_time"), "t2m", 12),
    )


def test_history_gives_an_operational_input_its_recent_errors():
    table = _table()
    last = table["init_time"] == table["init_time"].max()
    cycle = table[last].drop(columns="obs_t2m").reset_index(drop=True)  # no observations
    history = table[~last]
    assert np.isnan(recent.recent_errors(cycle, "t2m", 24)).all()
    got = recent.with_recent_errors(cycle, ["t2m"], 24, history=history)["err_t2m"]
    # the same values as from the whole table without the cycle's own observations
    whole = table.drop(columns="valid_time")
    whole.loc[last, "obs_t2m"] = np.nan
    want = recent.recent_errors(whole, "t2m", 24)[last.to_numpy()]
    np.testing.assert_allclose(got.to_numpy(), want)
    assert np.isfinite(want).all()


def _reference(table: pd.DataFrame, var: str, hours: float) -> np.ndarray:
    """The definition, spelled out with pandas (rolling time window, backward as-of merge)."""
    out = np.full(len(table), np.nan)
    err = pd.DataFrame(
        {
            "station": table["station"].astype(str).to_numpy(),
            "valid": recent.valid_times(table).array,
            "lead": table["lead_time"].to_numpy(),
            "err": (table[f"obs_{var}"] - table[f"fc_{var}"]).to_numpy(dtype="float64"),
        }
    )
    err = err[np.isfinite(err["err"])]
    err = err.sort_values(["lead"], kind="stable").drop_duplicates(["station", "valid"])
    err = err.sort_values(["station", "valid"], kind="stable")
    window = pd.Timedelta(hours=hours)
    mean = (
        err.set_index("valid").groupby("station", sort=False)["err"].rolling(window).mean()
    ).reset_index()
    query = pd.DataFrame(
        {
            "station": table["station"].astype(str).to_numpy(),
            "t": _cutoff(table),
            "row": np.arange(len(table)),
        }
    )
    found = pd.merge_asof(
        query.sort_values("t", kind="stable"),
        mean.assign(valid=mean["valid"].astype("datetime64[ns, UTC]")).sort_values(
            "valid", kind="stable"
        ),
        left_on="t",
        right_on="valid",
        by="station",
        direction="backward",
        tolerance=window,
    )
    out[found["row"].to_numpy()] = found["err"].to_numpy(dtype="float64")
    return out


def _cutoff(table: pd.DataFrame) -> pd.Series:
    """The init time, or just before the row's own valid time where that is not later."""
    init = pd.to_datetime(table["init_time"], utc=True)
    valid = recent.valid_times(table)
    cutoff = init.astype("datetime64[ns, UTC]")
    return cutoff.where(valid > init, valid - pd.Timedelta(1, "ns"))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    hours=st.sampled_from([1.0, 6.0, 13.5, 48.0]),
    n_stations=st.integers(1, 5),
    missing=st.floats(0.0, 0.8),
)
def test_matches_the_pandas_definition(seed, hours, n_stations, missing):
    """Irregular runs, repeated valid times across leads, gaps, stations without data."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    inits = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 96, n) * 3, unit="h"
    )
    table = pd.DataFrame(
        {
            "station": rng.choice([f"S{i}" for i in range(n_stations)], n),
            "init_time": inits,
            "lead_time": rng.choice([0.0, 3.0, 6.0, 24.0], n),
            "fc_t2m": rng.normal(size=n),
            "obs_t2m": np.where(rng.random(n) < missing, np.nan, rng.normal(size=n)),
        }
    )
    np.testing.assert_allclose(
        recent.recent_errors(table, "t2m", hours), _reference(table, "t2m", hours), atol=1e-12
    )


def test_the_table_keeps_its_attributes_and_is_not_changed():
    table = _table()
    table.attrs["source"] = "x.parquet"
    out = recent.with_recent_errors(table, ["t2m"], 12)
    assert out.attrs == {"source": "x.parquet"}
    assert "err_t2m" in out.columns and "err_t2m" not in table.columns
