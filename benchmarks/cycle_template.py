"""One cycle predicted with the training table as the coherent members' template.

Predicts the first init time of a registry dataset's test split with ``--members``
members and the training split as the Schaake shuffle's template (the operational use of
``probcast predict --template``) and prints the wall time of each repeat. The model comes
from an earlier ``probcast demo`` or ``probcast train`` of the same dataset.

Usage::

    PROBCAST_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/cycle_template.py \\
        --model outputs/demo/sydney-rain/model --dataset sydney-rain
"""

from __future__ import annotations

import argparse
import time

from probcast.data.prepare import prepare
from probcast.model.artefact import load
from probcast.predict.request import PredictRequest
from probcast.predict.runner import run


def main() -> None:
    """Time the cycle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained model folder")
    parser.add_argument("--dataset", required=True, help="registry dataset id")
    parser.add_argument("--members", type=int, default=51)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    prepared = prepare(args.dataset)
    train, test = prepared.train, prepared.test
    one = test[test["init_time"] == test["init_time"].min()]
    model = load(args.model)
    request = PredictRequest(
        model=args.model, input=one, members=args.members, template=train, seed=1
    )
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run(request, model)
        print(
            f"{args.dataset}: {len(one)} rows, template {len(train)} rows / "
            f"{train['init_time'].nunique()} dates: {time.perf_counter() - t0:.1f} s"
        )


if __name__ == "__main__":
    main()
