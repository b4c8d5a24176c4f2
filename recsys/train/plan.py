"""The sharding plan TorchRec's planner chose, as text: one line per table for the run's state
file, and one line in all for the log."""

from __future__ import annotations


def plan_summary(text: str) -> str:
    """``plan_text`` on one line, tables grouped by placement: "item, tag: table_wise on
    ranks [0]; genre, year: data_parallel on ranks [0]"."""
    groups: dict[str, list[str]] = {}
    for line in text.splitlines():
        table, _, where = line.partition(": ")
        groups.setdefault(where, []).append(table.rsplit(".", 1)[-1])
    return "; ".join(f"{', '.join(tables)}: {where}" for where, tables in groups.items())


def plan_text(plan) -> str:
    """One line per table: where the planner put it and how it is split."""
    lines = []
    for module, tables in plan.plan.items():
        for table, ps in tables.items():
            ranks = sorted({r for shard in (ps.sharding_spec.shards if ps.sharding_spec else [])
                            for r in [shard.placement.rank()]}) or list(ps.ranks or [])
            lines.append(f"{module or 'model'}.{table}: {ps.sharding_type} on ranks {ranks}")
    return "\n".join(lines)
