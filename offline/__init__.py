"""offline: the pipeline without AWS — template.yaml deployed into moto, Lambda code run in-process."""
