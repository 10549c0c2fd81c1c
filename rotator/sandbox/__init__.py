"""A faithful local imitation of the five provider APIs rotator drives, with fault injection.

``rotator.sandbox.app.create_app`` builds the app (all five APIs on one port plus the
``/_sandbox`` admin API); ``rotator.sandbox.server.SandboxServer`` runs it in a background
thread; ``python -m rotator.sandbox --port N`` runs it in the foreground. The preloaded
management credentials are in ``rotator.sandbox.defaults``.
"""
