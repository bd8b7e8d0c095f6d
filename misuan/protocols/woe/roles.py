"""Either role of WOE/IV by name: :func:`woe_iv` runs the label party's or the feature party's driver."""

from __future__ import annotations

from typing import Any

from misuan.crypto.he import PrivateKey, PublicKey
from misuan.errors import ConfigError
from misuan.net.channel import Channel
from misuan.protocols.woe.feature_party import woe_iv_feature_party
from misuan.protocols.woe.he_batch import ZeroEncryptions
from misuan.protocols.woe.label_party import woe_iv_label_party
from misuan.protocols.woe.messages import FEATURE_PARTY, LABEL_PARTY, STEP, Role
from misuan.protocols.woe.params import WoeParams
from misuan.protocols.woe.table import FeaturePartyWoe, WoeResult

__all__ = ["woe_iv"]


def woe_iv(
    chan: Channel,
    role: Role,
    peer: str,
    data: Any,
    *,
    params: WoeParams | None = None,
    keypair: tuple[PublicKey, PrivateKey] | None = None,
    zeros: ZeroEncryptions | None = None,
    step: str = STEP,
) -> WoeResult | FeaturePartyWoe:
    """Run the WOE/IV protocol as ``role``: ``data`` is the labels (label party) or the features
    (feature party: a DataFrame or a mapping of name to column), rows aligned with the peer's."""
    if role == LABEL_PARTY:
        return woe_iv_label_party(chan, peer, data, params=params, keypair=keypair, zeros=zeros, step=step)
    if role == FEATURE_PARTY:
        if keypair is not None or zeros is not None:
            raise ConfigError("only the label party holds a key pair (and encrypts) in a WOE job")
        return woe_iv_feature_party(chan, peer, data, params=params, step=step)
    raise ConfigError(f"WOE role must be {LABEL_PARTY!r} or {FEATURE_PARTY!r}, not {role!r}")
