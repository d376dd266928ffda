"""Run reports: report.json, CSV tables, PNG plots and summary.md, all written atomically."""
from .plots import accuracy_by_method, accuracy_vs_sparsity, energy_gap, solver_time
from .tables import fmt, format_table, markdown_table
from .writers import csv_text, write_csv, write_report

__all__ = ["accuracy_by_method", "accuracy_vs_sparsity", "energy_gap", "solver_time", "fmt", "format_table",
           "markdown_table", "csv_text", "write_csv", "write_report"]
