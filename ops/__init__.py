"""picwish-ops: what an operator of the pipeline asks — what is in flight, what failed and why — and re-running
failed uploads, against a deployed stack or the local one."""
