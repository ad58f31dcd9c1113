"""WDL workflows: fetched from git at a pinned commit, validated offline, packaged for Cromwell."""
