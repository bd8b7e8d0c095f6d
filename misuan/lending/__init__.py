"""Lending compliance as pure functions: repayment schedules, annualised rates, rate and amount caps,
the limit and pricing policy, disclosures and the marketing-copy checker. See ``docs/lending.md``.

Rule sets are data: TOML files under ``misuan/lending/rules/``.
"""
