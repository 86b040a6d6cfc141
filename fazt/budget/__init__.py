"""Per-request time budgets: one deadline, phases that draw from it (DESIGN.md section 2)."""

from fazt.budget._budget import Budget as Budget
from fazt.budget._budget import BudgetPolicy as BudgetPolicy
from fazt.budget._budget import Phase as Phase
from fazt.budget._budget import PhaseStats as PhaseStats
from fazt.budget._stats import BudgetStats as BudgetStats

__all__ = ["Budget", "BudgetPolicy", "BudgetStats", "Phase", "PhaseStats"]
