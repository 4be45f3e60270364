"""Gridded products as a forecast engineer reads them (audit): CF names in user units,
thresholds that mean what they say, the same bytes on a rerun, bits kept at a bound."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from probcast import defaults
from probcast.predict import grid_output
from probcast.predict.request import PredictRequest, RequestError
from probcast.products import build_products
from probcast.products.build import build_probabilities
from probcast.products.compress import plan_rounding
from probcast.products.source import as_source
from probcast.products.units import products_to_units
from probcast.testing import products as product_data

HEADS = {"t2m": "normal", "tp": "censored_logistic"}


@pytest.fixture(scope="module")
def products() -> dict[str, xr.Dataset]:
    fields = product_data.params((4, 6), variables=("t2m", "tp"))
    return build_products(
        fields,
        families=HEADS,
        percentiles=[10.0, 50.0, 90.0],
        thresholds={"t2m": list(defaults.PRODUCT_THRESHOLDS["t2m"]), "tp": [1.0]},
        n_members=3,
    )


def test_precipitation_in_a_length_unit_has_its_cf_name(products):
    # audit: tp in mm kept standard_name precipitation_amount (a mass per area): not CF
    out = products_to_units(products, {"tp": "mm"}, HEADS)
    lwe = "lwe_thickness_of_precipitation_amount"
    assert out["percentiles"]["tp"].attrs["standard_name"] == lwe
    assert out["members"]["tp"].attrs["standard_name"] == lwe
    prob = out["probabilities_tp"]
    assert f"probability_of_{lwe}_above_threshold" in prob.data_vars
    assert prob["threshold"].attrs["standard_name"] == lwe
    assert prob[f"probability_of_{lwe}_above_threshold"].attrs["diagnostic"] == "tp"
    same = products_to_units(products, {"tp": "kg m-2", "t2m": "degC"}, HEADS)
    assert same["percentiles"]["tp"].attrs["standard_name"] == "precipitation_amount"
    assert same["percentiles"]["t2m"].attrs["standard_name"] == "air_temperature"


def test_default_thresholds_in_user_units_are_the_round_numbers(products):
    # audit: 0 degC came out as -6.1e-06 (float32 273.15), so sel(threshold=0) failed
    assert all(round(t, 2) == t for t in defaults.PRODUCT_THRESHOLDS["t2m"])
    out = products_to_units(products, {"t2m": "degC"}, HEADS)["probabilities_t2m"]
    assert 0.0 in out["threshold"].values.tolist() and 5.0 in out["threshold"].values.tolist()
    assert out.sel(threshold=0.0)["threshold"].item() == 0.0


@pytest.mark.parametrize("bad", [[float("nan")], [0.1, float("nan")], [float("inf")]])
def test_thresholds_must_be_finite(bad, products):
    # audit: tp:nan wrote an all-NaN probability file with exit 0
    with pytest.raises(RequestError, match="finite"):
        PredictRequest(model="m", input="x.nc", thresholds={"tp": bad})
    fields = product_data.params((4, 6), variables=("tp",))
    source = as_source(fields, families={"tp": "censored_logistic"})
    with pytest.raises(ValueError, match="finite"):
        build_probabilities(source, "tp", bad)


def test_quantiles_and_percentiles_are_both_kept_for_grids():
    # audit: --quantiles=0.5 --percentiles=25 wrote only the 25th percentile
    request = PredictRequest(model="m", input="x.nc", quantiles=(0.5, 0.05), percentiles=(25.0,))
    assert request.grid_percentiles == (5.0, 25.0, 50.0)


def test_the_predictive_fields_come_back_in_their_order(tmp_path):
    # audit: the Zarr v3 store listed its arrays in a random order, so the products'
    # variable order (and bytes) changed from run to run
    names = [f"v{k}" for k in range(8)]
    fields = xr.Dataset({n: ("x", np.arange(4.0) + k) for k, n in enumerate(names)})
    for k in range(4):
        back = grid_output.store_fields(fields, tmp_path / f"s{k}.zarr")
        assert list(back.data_vars) == names
        xr.testing.assert_identical(back.load(), fields)


def test_a_fraction_at_its_bound_keeps_its_bits():
    # audit: cloud cover 1 over whole regions made 1 mantissa bit look enough; members
    # 0.52-0.61 became 0.5 and contradicted the probability file by up to 0.31
    rng = np.random.default_rng(0)
    field = np.clip(rng.normal(0.9, 0.15, (1, 64, 256)), 0, 1).astype(np.float32)
    field[:, :, :160] = 1.0  # overcast over most of the grid
    ds = xr.Dataset({"tcc": (("realization", "y", "x"), field)})
    rounding = plan_rounding(ds)["tcc"]
    assert rounding.skip == (0.0, 1.0)
    _, info = rounding(field)
    assert info.keepbits >= 5


def test_a_0_360_grid_is_in_the_domain_of_its_minus_180_180_twin(tmp_path, caplog):
    # audit: longitudes 350..359 were "beyond the training -10..-1" (refused with refuse)
    import pandas as pd

    from probcast.model.applicability import DomainPolicy
    from probcast.model.domain import domain_from_frame, save_domain
    from probcast.predict.grid_domain import check_domain

    rows = pd.DataFrame(
        {"station": ["a"] * 20, "lead_time": 24.0, "latitude": np.linspace(40, 45, 20),
         "longitude": np.linspace(-10, -1, 20)}
    )  # fmt: skip
    save_domain(tmp_path, domain_from_frame(rows, ["latitude", "longitude"]))
    grid = xr.Dataset(
        coords={"latitude": np.linspace(40, 45, 5), "longitude": np.linspace(350, 359, 5),
                "forecast_period": ("forecast_period", [np.timedelta64(24, "h")])}
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        check_domain(grid, tmp_path, DomainPolicy("refuse"), "w360.nc")
    assert "training domain" not in caplog.text
    far = grid.assign_coords(longitude=np.linspace(100, 109, 5))
    with pytest.raises(Exception, match="longitude"):
        check_domain(far, tmp_path, DomainPolicy("refuse"), "far.nc")


def test_a_grid_without_coordinates_is_named(tmp_path):
    # audit: "gridded dataset has no latitude/longitude coordinates" named no file
    from probcast.predict import gridded
    from probcast.predict.grid_checks import GridPredictError
    from probcast.testing.grids import forecast_grid

    ds = forecast_grid((6, 8), 1).drop_vars(["latitude", "longitude"], errors="ignore")
    ds = ds.drop_vars([v for v in ds.data_vars if str(v).startswith("obs_")])
    with pytest.raises(GridPredictError, match=r"<in-memory dataset>: .*latitude/longitude"):
        gridded.predict_grid(PredictRequest(model=_tiny_model(tmp_path), input=ds,
                                            output=tmp_path / "o.nc"))  # fmt: skip


def _tiny_model(root):
    from probcast.cli import main
    from probcast.ingest.gridded import write_dataset
    from probcast.testing.grids import forecast_grid

    write_dataset(forecast_grid((10, 12), 4), root / "train.nc")
    args = [f"--workdir={root / 'model'}", f"--config.data.path={root / 'train.nc'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.epochs=1", "--quiet"]) == 0
    return root / "model"
