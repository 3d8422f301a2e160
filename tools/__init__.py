"""Developer tooling run from the source tree (not installed with the appliance)."""
