"""Serverless JS: locked-down PythonMonkey worker processes (DESIGN.md section 3)."""
