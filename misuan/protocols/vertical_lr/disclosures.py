"""What vertical LR reveals, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind
from misuan.net.protocol import FEATURE_PARTY, LABEL_PARTY

_P = "vertical_lr"
LABEL, FEATURE = LABEL_PARTY, FEATURE_PARTY
EACH, OTHER = "each party", "the other party"
LEAD = "the lead feature party"  # the first feature party: it completes the sigmoid for all of them
MANY = "two or more feature parties"

SCHEMA = DisclosureKind(
    _P, "row count and bins per feature (the label party's also names the training's feature parties and their lead, "
    "and counts every party's features together)",
    "plaintext", EACH, OTHER,
)
BASE_RATE = DisclosureKind(_P, "base rate of the labels, rounded to 0.01", "aggregate", LABEL, FEATURE)
KAPPA = DisclosureKind(_P, "kappa of its own block of the initial matrix (label-free)", "aggregate", FEATURE, LABEL)
OT_BASE = DisclosureKind(_P, "base-OT sender's point (random)", "plaintext", EACH, OTHER)
OT_POINTS = DisclosureKind(_P, "base-OT receiver's points (its secret choice bits, blinded)", "blinded", EACH, OTHER)
OT_COLUMNS = DisclosureKind(
    _P, "OT-extension columns (its choice bits, masked by keystreams of seeds the peer lacks)", "blinded", EACH, OTHER,
)
LOOKUP = DisclosureKind(
    _P, "its share of the feature party's coefficients, one-time padded per row and bin", "blinded", LABEL, FEATURE,
)
TABLE = DisclosureKind(
    _P, "sigmoid-table entries per row, one-time padded (the opened one: p minus a wide mask)", "blinded", LABEL, LEAD,
)
SCATTER = DisclosureKind(_P, "per-row shares of p - y, one-time padded per row and feature", "blinded", LABEL, FEATURE)
LEAD_SCATTER = DisclosureKind(
    _P, "per-row shares of p - y into the label party's bins, one-time padded per row and feature", "blinded", LEAD,
    LABEL,
)
RESHARE = DisclosureKind(
    _P, "its share of a vector less a short random mask (statistically hiding: entries below 2^20)", "blinded", LABEL,
    FEATURE,
)
PRODUCT = DisclosureKind(_P, "product corrections, one-time padded per OT", "blinded", EACH, OTHER)
OWN_GRADIENT = DisclosureKind(
    _P, "the label party's own gradient (sums of p over its bins and the intercept)", "aggregate", LEAD, LABEL,
)
OPENED = DisclosureKind(
    _P, "optimiser scalars: its shares of inner products over every block (a feature party's masked by the other "
    "feature parties' zero-sum masks), and their totals", "aggregate", EACH, OTHER,
)
PROJECTION = DisclosureKind(
    _P, "its share of its block's projection counts^T D^-1 q in the preconditioner (the label party learns it)",
    "aggregate", FEATURE, LABEL,
)
GAMMA = DisclosureKind(
    _P, "the preconditioner's Woodbury coefficient of the feature party's block (from every block's projection)",
    "aggregate", LABEL, FEATURE,
)
OWN_BLOCK_GRADIENT = DisclosureKind(
    _P, "its share of the feature party's gradient (per feature, at every point the optimiser tries): the feature "
    "party learns its own gradient and coefficients during training", "aggregate", LABEL, FEATURE, when="penalty is 'l1'",
)
MASK_SEED = DisclosureKind(
    _P, "a random seed of zero-sum masks on the feature parties' shares of opened scalars", "plaintext", LEAD, FEATURE,
    when=MANY,
)
SCORE_SHARE = DisclosureKind(
    _P, "its share of each row's score mod 2^32, uniform (the label party's fresh lookup masks)", "blinded", FEATURE,
    LEAD, when=MANY,
)
P_SHARE = DisclosureKind(
    _P, "its share of each row's p, statistically hiding (the label party's wide table masks)", "blinded", LEAD,
    FEATURE, when=MANY,
)
COEFFICIENTS = DisclosureKind(
    _P, "the feature party's coefficients (its model part), from the label party's share", "aggregate", LABEL, FEATURE,
)
WOE_LABELS = DisclosureKind(
    _P, "per-row labels, one-time padded per row and feature (summed into the feature party's bins)", "blinded", LABEL,
    FEATURE, when="encoding is 'woe'",
)
WOE_EVENTS = DisclosureKind(
    _P, "its share of each feature-party bin's event count, opened: both learn the counts, hence the WOE", "aggregate",
    EACH, OTHER, when="encoding is 'woe'",
)
WOE_ROWS = DisclosureKind(_P, "the row count of each of its bins", "aggregate", FEATURE, LABEL, when="encoding is 'woe'")
WOE_TABLE = DisclosureKind(
    _P, "the WOE of each feature-party bin as it computed them (what the opened counts give anyway)", "aggregate",
    LABEL, FEATURE, when="encoding is 'woe'",
)

PARTNER_POINTS = DisclosureKind(
    _P, "per row scored, the feature party's points (its part of the score)", "plaintext", FEATURE, LABEL,
    when="joint scoring",
)
PARTNER_REASONS = DisclosureKind(
    _P, "per row scored, up to k of its features with the points each falls short of its best bin", "plaintext",
    FEATURE, LABEL, when="joint scoring",
)

TABLE_NAMES = DisclosureKind(
    _P, "the names of its features in the scorecard", "plaintext", FEATURE, LABEL, when="partner_table is not 'none'",
)
TABLE_LABELS = DisclosureKind(
    _P, "its features' bin labels (its cut points)", "plaintext", FEATURE, LABEL,
    when="partner_table is 'labels' or 'points'",
)
TABLE_POINTS = DisclosureKind(
    _P, "the points of each of its bins (its part of the scorecard)", "plaintext", FEATURE, LABEL,
    when="partner_table is 'points'",
)

COMMON_ROWS = DisclosureKind(
    _P, "which of the customers it shares with the label party every other feature party shares too (and so how "
    "many they all share)", "plaintext", LABEL, FEATURE, when=MANY,
)

MULTI_PARTY = (MASK_SEED, SCORE_SHARE, P_SHARE, COMMON_ROWS)  # only with several feature parties: none with one

DISCLOSURES = (
    SCHEMA, BASE_RATE, KAPPA, OT_BASE, OT_POINTS, OT_COLUMNS, LOOKUP, TABLE, SCATTER, LEAD_SCATTER, RESHARE, PRODUCT, OWN_GRADIENT, OPENED,
    PROJECTION, GAMMA, OWN_BLOCK_GRADIENT, *MULTI_PARTY,
    COEFFICIENTS, WOE_LABELS, WOE_EVENTS, WOE_ROWS, WOE_TABLE, PARTNER_POINTS, PARTNER_REASONS, TABLE_NAMES, TABLE_LABELS, TABLE_POINTS,
)
