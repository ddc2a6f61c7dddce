"""What a cloud environment costs per hour (an estimate) and the guards checked before anything is created."""

from __future__ import annotations

from ..exceptions import CloudInputError
from .spec import CloudSpec

#: On-demand Linux list prices in us-east-1, USD per instance-hour, as published in 2026: an ESTIMATE
#: for the printed cost (other regions differ; the bill decides). ``hourly_usd`` in the inventory wins.
ON_DEMAND_USD = {
    "t3.micro": 0.0104, "t3.medium": 0.0416, "m5.large": 0.096, "c5.large": 0.085, "c6i.large": 0.085,
    "c5.18xlarge": 3.06, "c5n.9xlarge": 1.944, "c5n.18xlarge": 3.888, "c6in.32xlarge": 7.2576,
    "hpc6a.48xlarge": 2.88, "hpc7a.96xlarge": 7.20, "hpc6id.32xlarge": 5.70,
}


def hourly_price(spec: CloudSpec, *, where: dict) -> float:
    """USD per instance-hour: the inventory's ``hourly_usd``, else the table; unknown is refused, not guessed."""
    if spec.hourly_usd is not None:
        return spec.hourly_usd
    try:
        return ON_DEMAND_USD[spec.instance_type]
    except KeyError:
        raise CloudInputError(f"no price known for {spec.instance_type}: set cloud.hourly_usd (USD per "
                              "instance-hour) so the cost can be estimated before anything is created",
                              file=where.get("file"), key=f"{where.get('key')}.hourly_usd") from None


def check_count(spec: CloudSpec, running: int, *, where: dict) -> None:
    """``max_instances``: the instances already running for this environment plus the new ones."""
    if running + spec.count > spec.max_instances:
        already = f" ({running} already running)" if running else ""
        raise CloudInputError(f"{spec.count} instance(s){already} would exceed max_instances {spec.max_instances}",
                              file=where.get("file"), key=f"{where.get('key')}.max_instances")


def estimate_text(spec: CloudSpec, count: int, price: float) -> str:
    """One line: hourly cost now and the most the guard lets it reach."""
    hourly = price * count
    return (f"{count} x {spec.instance_type} in {spec.region}: about ${hourly:.2f}/h (estimate); each instance "
            f"terminates itself after {spec.max_hours:g} h, so at most about ${hourly * spec.max_hours:.2f}")
