"""The dev stack's platform settings, shared by the demo's parts (workspaces, jobs, front door)."""

REGION = "us-east-1"
HATCHWAY_CONFIG = {"region": REGION, "bucket": "hatchway-demo-data", "prefix": "hatchway"}
