"""The tiered store: hot rows in DRAM, the table file on storage-class memory behind them.

``TieredStore`` serves pooled lookups of a table file; ``reorder_rows`` writes a co-access layout
of it; ``devices`` models DRAM, NAND and 3D XPoint and plans a DRAM budget (``plan``).
"""

from .devices import DEVICES, DeviceModel, Plan, get_device, plan
from .placement import Layout, blocks_per_batch, coaccess_order, mine_coaccess, reorder_rows
from .tiered import TieredStore

__all__ = [
    "DEVICES",
    "DeviceModel",
    "Layout",
    "Plan",
    "TieredStore",
    "blocks_per_batch",
    "coaccess_order",
    "get_device",
    "mine_coaccess",
    "plan",
    "reorder_rows",
]
