"""Data bundled with misuan (licences: DATA-LICENSES.md and each data set's SOURCE.md).

- :mod:`misuan.datasets.taiwan`: UCI "default of credit card clients" (CC BY 4.0) and its split into a
  bank's and a partner's table for the demo.
"""

from misuan.datasets.taiwan import load_taiwan, split_for_demo, write_demo_tables

__all__ = ["load_taiwan", "split_for_demo", "write_demo_tables"]
