"""Protocols, one package each (``psi``, ``woe``, ``secureboost``, ``describe``, ``secure_sum``).

Every package holds its parameters (``params.py``), its wire messages and version (``messages.py``),
its disclosure catalogue (``disclosures.py``) and one module per role: a role object that turns
received messages into the next ones, and a driver that moves them over a
:class:`~misuan.net.channel.Channel` (in memory or gRPC, the same code). The package docstring
states the security model and the leakage. See ``docs/architecture.md`` ("Protocol packages").
"""
