"""Members, percentiles, probabilities and parameter products: shapes, coords, invariants."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from probcast.products import (
    EnsembleSource,
    ParametricSource,
    build_members,
    build_parameters,
    build_percentiles,
    build_probabilities,
    build_products,
)
from probcast.testing import products as synthetic

SHAPE = (12, 20)
CHUNKS = {"y": 12, "x": 20}  # one chunk: JAX compiles once per block shape
FAMILIES = {"t2m": "normal", "tp": "censored_logistic", "ws10": "truncated_normal"}


class StubNormal:
    """Tiny numpy Normal with the distribution interface (quantile/cdf broadcast)."""

    def quantile(self, params: dict[str, Any], q: Any) -> np.ndarray:
        return params["loc"] + params["scale"] * stats.norm.ppf(q)

    def cdf(self, params: dict[str, Any], x: Any) -> np.ndarray:
        return stats.norm.cdf((x - params["loc"]) / params["scale"])

    def sample(self, params: dict[str, Any], key: Any, n: int) -> np.ndarray:
        rng = np.random.default_rng(abs(hash(str(key))) % 2**32)
        shape = (*np.shape(params["loc"]), n)
        return params["loc"][..., None] + params["scale"][..., None] * rng.normal(size=shape)


@pytest.fixture(scope="module")
def params() -> xr.Dataset:
    return synthetic.params(SHAPE, variables=tuple(FAMILIES))


@pytest.fixture(scope="module")
def source(params: xr.Dataset) -> ParametricSource:
    return ParametricSource(params, FAMILIES, chunks=CHUNKS)


def test_members_dims_coords_and_attrs(source: ParametricSource) -> None:
    ds = build_members(source, n_members=7).compute()
    assert set(ds.data_vars) == set(FAMILIES)
    assert ds["t2m"].dims == ("realization", "forecast_period", "y", "x")
    assert ds["t2m"].shape == (7, 1, *SHAPE)
    assert ds["realization"].dtype == np.int32
    assert ds["realization"].values.tolist() == list(range(7))
    assert ds["realization"].attrs["standard_name"] == "realization"
    assert ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds["t2m"].attrs["units"] == "K"
    assert ds["tp"].attrs["cell_methods"] == "time: sum"
    assert ds["t2m"].attrs["grid_mapping"] == synthetic.GRID_MAPPING
    assert ds[synthetic.GRID_MAPPING].attrs["grid_mapping_name"] == "lambert_conformal_conic"
    assert ds["latitude"].dims == ("y", "x")
    assert ds["t2m"].dtype == np.float32
    # Equidistant quantile members (ECC-Q) are sorted at every point.
    assert (ds["t2m"].diff("realization") >= 0).all()
    assert float(ds["tp"].min()) >= 0.0


def test_members_from_stub_distribution_match_normal_quantiles(params: xr.Dataset) -> None:
    stub = ParametricSource(params[["t2m_loc", "t2m_scale"]], {"t2m": StubNormal()}, CHUNKS)
    ds = build_members(stub, n_members=3).compute()
    levels = np.array([0.25, 0.5, 0.75])
    loc, scale = params["t2m_loc"].values, params["t2m_scale"].values
    expected = loc[None] + scale[None] * stats.norm.ppf(levels)[:, None, None, None]
    np.testing.assert_allclose(ds["t2m"].values, expected, rtol=1e-6)


def test_random_members_are_reproducible(source: ParametricSource) -> None:
    a = build_members(source, n_members=40, method="random", seed=1)["t2m"].compute()
    b = build_members(source, n_members=40, method="random", seed=1)["t2m"].compute()
    c = build_members(source, n_members=40, method="random", seed=2)["t2m"].compute()
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.dims[0] == "realization" and a.sizes["realization"] == 40
    # 40 draws: the member mean is within a few standard errors of the location.
    loc = source.params["t2m"]["loc"].values
    scale = source.params["t2m"]["scale"].values
    z = (a.mean("realization").values - loc) / (scale / np.sqrt(40))
    assert np.mean(np.abs(z) < 4) > 0.99


def test_percentiles_monotonic_and_median_is_location(source: ParametricSource) -> None:
    ds = build_percentiles(source, [10.0, 50.0, 90.0]).compute()
    assert ds["percentile"].dtype == np.float32
    assert ds["percentile"].attrs["units"] == "%"
    assert ds["percentile"].values.tolist() == [10.0, 50.0, 90.0]
    for var in FAMILIES:
        assert ds[var].dims[0] == "percentile"
        assert (ds[var].diff("percentile") >= 0).all(), var
    loc = source.params["t2m"]["loc"].values
    np.testing.assert_allclose(ds["t2m"].sel(percentile=50.0).values, loc, rtol=1e-6)


@pytest.mark.parametrize("bad", [[], [0.0, 50.0], [50.0, 100.0], [60.0, 40.0]])
def test_percentiles_rejects_bad_levels(source: ParametricSource, bad: list[float]) -> None:
    with pytest.raises(ValueError, match="percentiles"):
        build_percentiles(source, bad)


def test_probabilities_improver_convention(source: ParametricSource) -> None:
    thresholds = [275.0, 285.0, 295.0]
    ds = build_probabilities(source, "t2m", thresholds).compute()
    name = "probability_of_air_temperature_above_threshold"
    assert list(ds.data_vars) == [name]
    prob = ds[name]
    assert prob.dims == ("threshold", "forecast_period", "y", "x")
    assert prob.attrs["units"] == "1"
    assert prob.attrs["spp__relative_to_threshold"] == "greater_than"
    threshold = ds["threshold"]
    assert threshold.attrs["standard_name"] == "air_temperature"
    assert threshold.attrs["units"] == "K"
    assert threshold.attrs["spp__relative_to_threshold"] == "greater_than"
    assert threshold.values.tolist() == thresholds
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0
    assert (prob.diff("threshold") <= 0).all()
    loc = source.params["t2m"]["loc"].values
    scale = source.params["t2m"]["scale"].values
    expected = stats.norm.sf(np.array(thresholds)[:, None, None, None], loc, scale)
    np.testing.assert_allclose(prob.values, expected, atol=1e-5)


def test_probability_of_precipitation_includes_point_mass(source: ParametricSource) -> None:
    prob = build_probabilities(source, "tp", [0.0, 0.1, 1.0, 10.0]).compute()
    values = prob["probability_of_precipitation_amount_above_threshold"]
    assert values.attrs["cell_methods"] == "time: sum"
    assert (values.diff("threshold") <= 0).all()
    assert float(values.isel(threshold=0).min()) < 1.0  # dry somewhere


def test_probabilities_reject_unknown_variable_and_unsorted(source: ParametricSource) -> None:
    with pytest.raises(ValueError, match="not in the source"):
        build_probabilities(source, "msl", [1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        build_probabilities(source, "t2m", [290.0, 280.0])


def test_parameters_product(source: ParametricSource) -> None:
    ds = build_parameters(source)
    assert set(ds.data_vars) == {f"{v}_{p}" for v in FAMILIES for p in ("loc", "scale")}
    attrs = ds["tp_scale"].attrs
    assert attrs["distribution"] == "censored_logistic"
    assert attrs["distribution_parameter"] == "scale"
    assert attrs["units"] == "kg m-2"
    assert attrs["grid_mapping"] == synthetic.GRID_MAPPING
    assert ds["tp_scale"].dtype == np.float32


def test_results_do_not_depend_on_chunks(params: xr.Dataset) -> None:
    fields = params[["t2m_loc", "t2m_scale"]]
    stub = {"t2m": StubNormal()}
    a = build_percentiles(ParametricSource(fields, stub, {"y": 5, "x": 7}), [25.0, 75.0])
    b = build_percentiles(ParametricSource(fields, stub, {"y": 12, "x": 20}), [25.0, 75.0])
    assert a["t2m"].data.npartitions == 9
    xr.testing.assert_identical(a.compute(), b.compute())


def test_build_products_names_and_provenance(params: xr.Dataset) -> None:
    out = build_products(params, families=FAMILIES, n_members=5, percentiles=[50.0], chunks=CHUNKS)
    expected = {"members", "percentiles", "parameters"} | {f"probabilities_{v}" for v in FAMILIES}
    assert set(out) == expected
    assert out["members"].attrs["Conventions"] == "CF-1.8"
    assert out["probabilities_tp"].attrs["product"] == "probabilities"
    assert out["members"].sizes["realization"] == 5


def test_build_products_reads_families_from_attrs(params: xr.Dataset) -> None:
    tagged = params[["t2m_loc", "t2m_scale"]].copy()
    for name in tagged.data_vars:
        tagged[name].attrs["distribution"] = "normal"
    out = build_products(tagged, products=["percentiles"], percentiles=[50.0])
    assert list(out["percentiles"].data_vars) == ["t2m"]


def test_build_products_rejects_unknown_product(params: xr.Dataset) -> None:
    with pytest.raises(ValueError, match="unknown products"):
        build_products(params, families=FAMILIES, products=["histogram"])


def test_missing_parameter_fields_named_in_error(params: xr.Dataset) -> None:
    with pytest.raises(ValueError, match="'msl'"):
        ParametricSource(params, {"msl": "normal"})


def test_forecast_reference_time_dimension_gives_2d_valid_time() -> None:
    ds = synthetic.params(SHAPE, variables=("t2m",), lead_hours=(6.0, 12.0), with_frt_dim=True)
    out = build_percentiles(ParametricSource(ds, {"t2m": "normal"}, CHUNKS), [50.0])
    assert out["t2m"].dims == ("percentile", "forecast_reference_time", "forecast_period", "y", "x")
    assert out["time"].dims == ("forecast_reference_time", "forecast_period")
    expected = out["forecast_reference_time"] + out["forecast_period"]
    np.testing.assert_array_equal(out["time"].values, expected.values)


# --- ensemble input -------------------------------------------------------------------


@pytest.fixture(scope="module")
def members() -> xr.Dataset:
    return synthetic.members((10, 14), variables=("t2m", "tp"), n_members=9)


def test_ensemble_percentiles_and_probabilities_match_numpy(members: xr.Dataset) -> None:
    source = EnsembleSource(members, chunks={"y": 4, "x": 4})
    pct = build_percentiles(source, [10.0, 50.0, 90.0]).compute()
    expected = np.percentile(members["t2m"].values, [10, 50, 90], axis=0)
    np.testing.assert_allclose(pct["t2m"].values, expected, rtol=1e-6)
    prob = build_probabilities(source, "tp", [0.0, 1.0]).compute()
    frac = (members["tp"].values[None] > np.array([0.0, 1.0])[:, None, None, None, None]).mean(1)
    values = prob["probability_of_precipitation_amount_above_threshold"].values
    np.testing.assert_allclose(values, frac, atol=1e-6)


def test_ensemble_members_pass_through_or_resample(members: xr.Dataset) -> None:
    same = build_members(members, n_members=None).compute()
    np.testing.assert_array_equal(same["t2m"].values, members["t2m"].values)
    assert same["t2m"].attrs["standard_name"] == "air_temperature"
    fewer = build_members(members, n_members=3).compute()
    assert fewer.sizes["realization"] == 3


def test_ensemble_member_dim_is_renamed_and_parameters_refused(members: xr.Dataset) -> None:
    grib_like = members.rename({"realization": "number"})
    out = build_products(grib_like, member_dim="number", products=["members"], n_members=None)
    assert out["members"]["t2m"].dims[0] == "realization"
    with pytest.raises(TypeError, match="parameters"):
        build_parameters(EnsembleSource(members))
    with pytest.raises(ValueError, match="member dimension"):
        EnsembleSource(members, member_dim="number")


def test_ensemble_probability_is_nan_where_all_members_missing(members: xr.Dataset) -> None:
    holed = members.copy(deep=True)
    holed["t2m"][:, 0, 0, 0] = np.nan
    prob = build_probabilities(holed, "t2m", [280.0]).compute()
    values = prob["probability_of_air_temperature_above_threshold"].values
    assert np.isnan(values[0, 0, 0, 0])
    assert np.isfinite(values[0, 0, 1, 1])


@settings(max_examples=25, deadline=None)
@given(
    values=hnp.arrays(
        np.float32,
        (6, 1, 2, 3),
        elements=st.floats(-50, 50, width=32, allow_nan=False),
    ),
    thresholds=st.lists(st.floats(-60, 60), min_size=1, max_size=5, unique=True).map(sorted),
)
def test_ensemble_invariants(values: np.ndarray, thresholds: list[float]) -> None:
    ds = xr.Dataset({"u10": (("realization", "forecast_period", "y", "x"), values)})
    prob = build_probabilities(ds, "u10", thresholds).compute()
    p = prob["probability_of_eastward_wind_above_threshold"]
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    assert (p.diff("threshold") <= 0).all()
    pct = build_percentiles(ds, [5.0, 25.0, 50.0, 75.0, 95.0]).compute()
    assert (pct["u10"].diff("percentile") >= 0).all()
