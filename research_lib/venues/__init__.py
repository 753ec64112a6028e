"""Where orders go: the broker interface and its external venues (issue 13).

``base`` (the :class:`~.base.Broker` protocol the engine trades through, what a venue
reports), ``config`` (``session.yaml`` section ``venue``), ``alpaca`` (Alpaca's paper
trading API through alpaca-py), ``broker`` (the ledger's side of a venue), ``reconcile``
(the venue's account against the ledger's), ``link`` (a session's reconciliation and the
venue's view in the risk check), ``setup`` (choosing and opening the venue). The internal
paper broker is :class:`research_lib.broker.PaperBroker`.
"""
