"""The ``misuan lending rate|schedule|caps`` subcommands: argument wiring and output (text or JSON).

``misuan/cli.py`` creates the ``lending`` group and calls :func:`add_commands`; the work is done by
the pure functions of this package (imported when a command runs, so building the parser stays cheap).
Exit codes (``misuan exit-codes``): 0 all checks passed; 2 bad
arguments, unknown jurisdiction or lender type, malformed rule file (ConfigError); 3 a loan that
cannot be: negative principal, a schedule that never repays, no rate (or several) that solves the
equation (DataError); 10 a check found a violation: a cap exceeded, or a disclosed APR outside the
Regulation Z tolerance (:class:`~misuan.errors.ComplianceViolation`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from misuan.errors import ComplianceViolation, ConfigError
from misuan.lending import caps as caps_mod
from misuan.lending import schedule as sched
from misuan.lending.errors import LoanError
from misuan.lending.timing import YEAR_BASES, UnitPeriod

__all__ = ["add_commands"]

REPAYMENTS = ("equal-instalment", "equal-principal", "fee-instalment", "interest-only", "bullet")
RULES = ("pboc", "regz", "mla", "eu")


# --- arguments -------------------------------------------------------------------------------------
def _rate(text: str) -> float:
    """``0.24`` or ``24%``."""
    raw = text.strip()
    try:
        return float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"write a rate as 0.24 or 24%, not {text!r}") from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"write a date as YYYY-MM-DD, not {text!r}") from None


def _add_loan_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the loan (or --flows FILE)")
    g.add_argument("--principal", type=float, help="face amount of the loan")
    g.add_argument("--annual-rate", type=_rate, help="nominal annual interest rate: 0.12 or 12%%")
    g.add_argument("--term", type=int, help="number of payments")
    g.add_argument("--payment", type=float,
                   help="level payment: with --term, the stated payments; with --annual-rate, pay until repaid")
    g.add_argument("--repayment", choices=REPAYMENTS, default="equal-instalment", help="how it is repaid (default %(default)s)")
    g.add_argument("--fee-rate", type=_rate, help="fee-instalment: fee per period on the original principal")
    g.add_argument("--unit", help="payment period: month (default), week, 2week, semimonth, day, 3month, year; "
                   "with --flows, default: the most frequent interval")
    g.add_argument("--start", type=_date, help="date the loan is advanced (default today)")
    g.add_argument("--first-payment", type=_date, help="first due date, for an odd first period")
    g.add_argument("--upfront-fee", type=float, default=0.0, help="fee deducted from the proceeds")
    g.add_argument("--periodic-fee", type=float, default=0.0, help="fee added to every payment")
    g.add_argument("--flows", metavar="FILE",
                   help='dated cash flows as JSON ("-" for stdin): [{"date": "2026-01-10", "amount": 5000, '
                        '"kind": "advance"}, {"date": ..., "kind": "payment"}, ...]')


def _load_flows(path: str) -> list[sched.CashFlow]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except OSError as exc:
        raise ConfigError(f"--flows {path}: cannot be read ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoanError(f"--flows {path}: not valid JSON ({exc})") from None
    items = doc.get("flows") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise LoanError(f"--flows {path}: give a list of {{date, amount, kind}} objects")
    out = []
    for k, item in enumerate(items, 1):
        try:
            out.append(sched.CashFlow(dt.date.fromisoformat(item["date"]), float(item["amount"]), item["kind"]))
        except (KeyError, TypeError, ValueError):
            raise LoanError(f"--flows {path}: flow {k} needs date (YYYY-MM-DD), amount (number) and kind "
                            f"(advance or payment), not {item!r}") from None
    return out


def _schedule(args: argparse.Namespace) -> sched.Schedule:
    """The schedule the loan arguments describe."""
    if args.flows:
        return sched.from_flows(_load_flows(args.flows), unit=args.unit, upfront_fee=args.upfront_fee)
    if args.principal is None:
        raise ConfigError("give the loan: --principal with --term and --annual-rate (or --payment), or --flows FILE")
    kw: dict[str, Any] = {"unit": UnitPeriod.parse(args.unit or "month"), "start": args.start or dt.date.today(),
                          "first_payment": args.first_payment, "upfront_fee": args.upfront_fee}
    if args.payment is not None and args.annual_rate is None:
        if args.term is None:
            raise ConfigError("--payment needs --term (the number of payments) or --annual-rate")
        return sched.level_payments(args.principal, args.payment, args.term, **kw)
    if args.payment is not None:
        return sched.fixed_payment(args.principal, args.annual_rate, args.payment, periodic_fee=args.periodic_fee, **kw)
    if args.term is None:
        raise ConfigError("give --term (the number of payments)")
    if args.repayment == "fee-instalment":
        if args.fee_rate is None:
            raise ConfigError("--repayment fee-instalment needs --fee-rate (the fee per period on the principal)")
        return sched.fee_instalment(args.principal, args.fee_rate, args.term, **kw)
    if args.annual_rate is None:
        raise ConfigError(f"--repayment {args.repayment} needs --annual-rate")
    build = {"equal-instalment": sched.equal_instalment, "equal-principal": sched.equal_principal,
             "interest-only": sched.interest_only, "bullet": sched.bullet}[args.repayment]
    return build(args.principal, args.annual_rate, args.term, periodic_fee=args.periodic_fee, **kw)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: list[str]) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, ensure_ascii=False, default=str))
    else:
        print("\n".join(text))


# --- rate ------------------------------------------------------------------------------------------
def _rates(s: sched.Schedule, args: argparse.Namespace) -> tuple[dict[str, Any], list[str], bool]:
    from misuan.lending.rates import eu_aprc, mla_mapr, pboc_rate, regz_apr

    wanted = RULES if args.rule == "all" else (args.rule,)
    out: dict[str, Any] = {}
    text: list[str] = []
    ok = True
    if "pboc" in wanted:
        p = pboc_rate(s)
        out["pboc"] = p.as_dict()
        text.append(f"PBoC [2021] No. 3 annualised rate: {p.compound:.2%} compound (IRR), {p.simple:.2%} simple "
                    f"({p.period_rate:.5%} per {p.unit.label} x {p.periods_per_year:g})")
    if "regz" in wanted or "mla" in wanted:
        z = regz_apr(s)
        out["regz"] = z.as_dict()
        text.append(f"Regulation Z APR (Appendix J): {z.apr:.2%} (unit period {z.unit.label}, {z.per_year:g} a year, "
                    f"{'regular' if z.regular else 'irregular'}: tolerance {z.tolerance:.3%})")
        if args.disclosed_apr is not None:
            chk = z.check(args.disclosed_apr)
            ok = chk.accurate
            out["regz"]["disclosed_check"] = {"disclosed": chk.disclosed, "difference": chk.difference,
                                              "accurate": chk.accurate, "rule": chk.rule}
            text.append(f"  disclosed {chk.disclosed:.3%}: {'accurate' if ok else 'NOT accurate'} "
                        f"(off by {chk.difference:+.3%}; {chk.rule})")
    if "mla" in wanted:
        m = mla_mapr(s, additional_charges=args.mla_charges)
        out["mla"] = m.as_dict()
        text.append(f"MLA MAPR (32 CFR 232.4(c)): {m.mapr:.2%} (with {m.additional_charges:,.2f} of other charges)")
    if "eu" in wanted:
        e = eu_aprc(s, basis=args.year_basis)
        out["eu"] = e.as_dict()
        text.append(f"EU APRC (2008/48/EC Annex I, {e.basis}): {e.rounded(1):.1f}% ({e.aprc:.4%})")
    return out, text, ok


def cmd_rate(args: argparse.Namespace) -> int:
    s = _schedule(args)
    out, text, ok = _rates(s, args)
    _emit(args, {"ok": ok, **out}, text)
    return 0 if ok else ComplianceViolation.exit_code


# --- schedule --------------------------------------------------------------------------------------
def _row_dict(r: sched.Row) -> dict[str, Any]:
    return {"number": r.number, "date": r.date.isoformat(), "payment": r.payment, "principal": r.principal,
            "interest": r.interest, "fee": r.fee, "balance": r.balance}


def cmd_schedule(args: argparse.Namespace) -> int:
    from misuan.lending.disclosure import loan_disclosure
    from misuan.lending.rates import pboc_rate

    s = _schedule(args)
    if args.disclosure:
        d = loan_disclosure(s, lang=args.disclosure, headline=args.headline)
        if args.json:
            print(json.dumps({"lang": d.lang, "text": d.text, "html": d.html}, indent=2, ensure_ascii=False))
        else:
            print(d.html if args.html else d.text, end="")
        return 0
    p = pboc_rate(s)
    payload = {"method": s.method, "principal": s.principal, "amount_advanced": s.amount_advanced,
               "unit": s.unit.label, "total_repaid": s.total_repaid, "total_cost": s.total_cost,
               "annualised_rate": {"simple": p.simple, "compound": p.compound},
               "rows": [_row_dict(r) for r in s.rows]}
    text = [f"{s.method}: {s.principal:,.2f} advanced as {s.amount_advanced:,.2f}; repaid {s.total_repaid:,.2f}; "
            f"cost {s.total_cost:,.2f}; annualised rate {p.compound:.2%} compound, {p.simple:.2%} simple",
            f"{'no':>4} {'date':<10} {'payment':>12} {'principal':>12} {'interest':>10} {'fee':>8} {'balance':>12}"]
    for r in s.rows:
        cells = [f"{x:,.2f}" if x is not None else "-" for x in (r.payment, r.principal, r.interest, r.fee, r.balance)]
        text.append(f"{r.number:>4} {r.date.isoformat():<10} {cells[0]:>12} {cells[1]:>12} {cells[2]:>10} "
                    f"{cells[3]:>8} {cells[4]:>12}")
    _emit(args, payload, text)
    return 0


# --- caps ------------------------------------------------------------------------------------------
def _facts(args: argparse.Namespace) -> caps_mod.LoanFacts:
    from misuan.lending.rates import mla_mapr, pboc_rate

    has_loan = args.principal is not None or args.flows
    s = _schedule(args) if has_loan else None
    rate, compound, mapr, term_days = args.rate, args.rate_compound, args.mapr, args.term_days
    if s is not None:
        p = pboc_rate(s)
        rate = p.simple if rate is None else rate
        compound = p.compound if compound is None else compound
        mapr = mla_mapr(s, additional_charges=args.mla_charges).mapr if mapr is None else mapr
        term_days = (s.maturity - s.start).days if term_days is None else term_days
    amount = args.amount if args.amount is not None else (s.principal if s is not None else None)
    when = args.date or (s.start if s is not None else dt.date.today())
    return caps_mod.LoanFacts(args.lender, when, rate, compound, mapr, amount, args.partner_share, term_days,
                              args.covered_borrower, args.lpr)


def cmd_caps(args: argparse.Namespace) -> int:
    if not args.jurisdiction and not args.rules:
        raise ConfigError("say which rules: --jurisdiction CN|US (or --rules FILE)")
    ruleset = caps_mod.load_rules(args.jurisdiction, path=args.rules)
    report = caps_mod.check_caps(_facts(args), ruleset)
    text = [f"{ruleset.title}: {report.lender}, contract date {report.contract_date}"]
    for c in report.checks:
        shown = f"{c.figure:.2%}" if c.figure_name in caps_mod.RATE_FIGURES or c.figure_name == "partner_share" \
            else f"{c.figure:,.2f}"
        op = "<=" if c.check == "max" else ">="
        text.append(f"  {c.status.upper():<13} {c.rule_id}: {c.figure_name} {shown} {op} {c.limit_text}  [{c.source}]")
    text += [f"  NOT CHECKED   {rule}: {why}" for rule, why in report.not_checked]
    if not report.checks:
        text.append("  (no rule binds this lender with the figures given)")
    text.append("ok: no cap exceeded" if report.ok else f"VIOLATION: {len(report.violations)} cap(s) exceeded")
    _emit(args, report.as_dict(), text)
    return 0 if report.ok else ComplianceViolation.exit_code


# --- wiring ----------------------------------------------------------------------------------------
def add_commands(lsub: Any) -> None:
    """Add ``rate``, ``schedule`` and ``caps`` to the ``misuan lending`` subparsers ``lsub``."""
    epilog = "exit codes: 0 ok, 2 bad arguments or rule file, 3 impossible loan or no rate, 10 violation"
    p = lsub.add_parser("rate", help="annualised rates of a loan: PBoC, Regulation Z APR, MLA MAPR, EU APRC",
                        epilog=epilog)
    _add_loan_args(p)
    p.add_argument("--rule", choices=(*RULES, "all"), default="all", help="which rate (default all)")
    p.add_argument("--disclosed-apr", type=_rate, help="check this APR against the Regulation Z tolerance (exit 10 if off)")
    p.add_argument("--mla-charges", type=float, default=0.0,
                   help="credit insurance, ancillary and other fees the MAPR counts, paid at the start or financed")
    p.add_argument("--year-basis", choices=YEAR_BASES, default="calendar", help="EU APRC year (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rate)

    p = lsub.add_parser("schedule", help="a repayment schedule, or its borrower disclosure", epilog=epilog)
    _add_loan_args(p)
    p.add_argument("--disclosure", choices=("zh", "en"), help="print the borrower disclosure in this language")
    p.add_argument("--headline", choices=("compound", "simple"), default="compound",
                   help="annualised rate shown first and largest in the disclosure (default %(default)s)")
    p.add_argument("--html", action="store_true", help="with --disclosure: the HTML fragment")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_schedule)

    p = lsub.add_parser("caps", help="check a loan against the rate and amount caps (exit 10 on a violation)",
                        epilog=epilog)
    p.add_argument("--jurisdiction", help="CN or US (the bundled rule sets)")
    p.add_argument("--rules", metavar="FILE", help="a rule file of your own (TOML, as misuan/lending/rules/)")
    p.add_argument("--lender", required=True, help="lender type, e.g. microloan, bank_internet, private, bank")
    p.add_argument("--date", type=_date, help="contract date (default: the loan's start, else today)")
    p.add_argument("--rate", type=_rate, help="annualised rate (simple, as PBoC's) if no loan is given")
    p.add_argument("--rate-compound", type=_rate, help="compound annualised rate")
    p.add_argument("--mapr", type=_rate, help="MLA MAPR")
    p.add_argument("--amount", type=float, help="the borrower's credit line (default: the principal)")
    p.add_argument("--partner-share", type=_rate, help="joint lending: the partner's share of the funding")
    p.add_argument("--term-days", type=int, help="term in days (default: from the loan)")
    p.add_argument("--covered-borrower", action="store_true", help="MLA: the borrower is a covered member")
    p.add_argument("--lpr", type=_rate, help="one-year LPR at the contract date (default: the rule set's table)")
    p.add_argument("--mla-charges", type=float, default=0.0, help="other charges the MAPR counts")
    _add_loan_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_caps)
