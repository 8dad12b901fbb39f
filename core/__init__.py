"""The bottom layer: what every app shares and no app owns.

API scaffolding and problem+json (``api``, ``problems``), the business-refusal
base exception (``exceptions``), the periodic jobs' lock (``jobs``, ``models``)
and retry timing (``retry``), and how an actor is named in audit rows
(``actors``). It imports no app of this project (tests/test_layers.py).
"""
