from types import SimpleNamespace

import pandas as pd

from probcast.verify import plots


def test_crps_plot_with_leads_lacking_intervals() -> None:
    """Leads where a CRPSS interval is undefined must not break the lead-time plot."""
    rows = []
    for lead in (1.0, 2.0, 3.0):
        for method, crps in (("raw", 1.0), ("model", 0.8)):
            rows.append(("crps", method, lead, crps))
            if method == "model":
                rows.append(("crpss", method, lead, 0.2))
                if lead != 3.0:  # no interval at the last lead
                    rows += [("crpss_lo", method, lead, 0.1), ("crpss_hi", method, lead, 0.3)]
    records = [
        {"method": m, "variable": "t2m", "by": "lead_time", "key": str(k), "metric": x, "value": v}
        for x, m, k, v in rows
    ]
    ver = SimpleNamespace(scores=pd.DataFrame(records), meta={"reference": "raw"})
    png = plots.crps_by_lead(ver, "t2m")
    assert png is not None and png[:4] == b"\x89PNG"
