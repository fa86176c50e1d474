"""The study report: one self-contained HTML file, tables.xlsx and figures/."""
