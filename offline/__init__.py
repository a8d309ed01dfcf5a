"""offline: the pipeline without AWS: template.yaml deployed into moto, each Lambda invocation in a sandbox."""
