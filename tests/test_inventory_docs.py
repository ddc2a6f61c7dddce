"""docs/inventory.md is generated from the inventory models, and kept current by this test."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from vhpclib import inventory_docs
from vhpclib.config import Environment, HostSpec, Inventory, MpiSpec
from vhpclib.workloads.npb import NpbSpec

ROOT = Path(__file__).resolve().parent.parent


def test_docs_inventory_md_is_current() -> None:
    expected = inventory_docs.render()
    actual = (ROOT / "docs/inventory.md").read_text()
    assert actual == expected, "docs/inventory.md is out of date: run `make docs` and commit it"


def test_every_key_of_every_model_is_documented_with_type_and_default() -> None:
    keys = {row.key: row for row in inventory_docs.rows(Inventory)}
    for model, prefix in ((Environment, "environments.<name>"), (HostSpec, "environments.<name>.hosts[]"),
                          (MpiSpec, "environments.<name>.mpi"), (NpbSpec, "environments.<name>.benchmarks.npb")):
        for name in model.model_fields:
            row = keys[f"{prefix}.{name}"]
            assert row.type and row.default, row
    assert keys["environments.<name>.vcpu_pinning"].type.startswith("one of: `pinned`")
    assert keys["environments.<name>.label"].default == "**required**"
    hosts = keys["environments.<name>.hosts"]  # required unless the environment is a guest (vm:)
    assert "``vm``" in hosts.meaning and keys["environments.<name>.vm.vcpus"].default == "**required**"
    assert "source" not in keys, "set by the loader, not a key of the file"


def test_examples_come_from_the_shipped_inventories() -> None:
    keys = {row.key: row for row in inventory_docs.rows(Inventory)}
    assert keys["environments.<name>.hosts[].address"].example == "`agc-node01.example`"
    assert keys["environments.<name>.launch.address"].example == "`agc-node01.example`"  # same model as hosts[]
    assert keys["environments.<name>.mpi.flavour"].example == "`openmpi`"


class Sample(BaseModel):
    """A model of this test, so the comments are known whatever config.py says."""

    beside: int = 1  # what the comment beside a field says
    # what the comment lines above a field say,
    # joined into one sentence
    above: str = "x"
    described: bool = Field(False, description="a description wins over comments")  # not this


def test_meanings_come_from_descriptions_or_the_comments_beside_the_fields() -> None:
    rows = {r.key: r for r in inventory_docs.rows(Sample, examples={})}
    assert rows["beside"].meaning == "what the comment beside a field says"
    assert rows["above"].meaning == "what the comment lines above a field say, joined into one sentence"
    assert rows["described"].meaning == "a description wins over comments"
    assert rows["beside"].example == "`1`" and rows["described"].type == "true/false"
