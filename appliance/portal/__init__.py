"""The clinic portal on the gateway (docs/portal.md): review recordings and watch the fleet from a
browser. Only this package (and tests) imports Flask, cheroot and argon2; `settings` imports none
of them, so the gateway's settings reader stays light."""
